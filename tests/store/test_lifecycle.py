"""Archiving a stream: its events stay, reads and builds leave them out, appends are refused, views are kept.

docs/lifecycle.md says what archiving means; these tests show it on a real store, with inline projections on
the Python engine and in the database, and async ones built by the daemon, of every stored kind (COUNTERS: a
stream projection, an aggregate, a view). The oracle for "what remains" is a simulation of the streams that
are not archived.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from typing import Any

import psycopg
import pytest

from clihelp import JSPROJ
from jsproj.engine.events_file import as_messages
from jsproj.engine.projections import Projections
from jsproj.engine.simulation import simulate
from jsproj.errors import JsprojError, StreamArchivedError, StreamDeletedError, UnknownStreamError
from jsproj.follow.daemon import STALE_SECONDS, Daemon, progress
from jsproj.projections.deploy import deploy
from jsproj.projections.live import aggregate
from jsproj.projections.operations import rebuild
from jsproj.projections.status import projection_status
from jsproj.projections.views import export_views
from jsproj.store.sync import EventStore

from blocking import BlockingAsyncStore
from projections import COUNTERS, sources
from waiting import wait_until

#: Three Account streams; acct-2 is the one archived.
MESSAGES = [
    {
        "id": f"acct-{n}",
        "type": "Account",
        "data": [{"$type": "Deposited", "amount": 10 * n}, {"$type": "Withdrawn", "amount": n}],
    }
    for n in (1, 2, 3)
]


def remaining(archived: str = "acct-2") -> list[dict[str, Any]]:
    return [message for message in MESSAGES if message["id"] != archived]


def folded(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The views a simulation of ``messages`` gives: what a store's views must equal."""
    with Projections(sources(Counters=COUNTERS)) as loaded:
        return dict(simulate(loaded, messages))


def event_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("select count(*) from pge_events").fetchone()[0])


@pytest.mark.parametrize("kind", ["sync", "asyncio"])
def test_an_archived_stream_is_left_out_of_reads_unless_asked_for_and_comes_back_when_unarchived(
    dsn: str, kind: str
) -> None:
    store: Any = EventStore(dsn) if kind == "sync" else BlockingAsyncStore(dsn)
    with store:
        store.append_all(MESSAGES)
        change = store.archive_stream("acct-2")
        assert change.changed and change.archived_at is not None
        assert {e.stream_id for e in store.read_all()} == {"acct-1", "acct-3"}
        assert {e.stream_id for e in store.read_all(include_archived=True)} == {"acct-1", "acct-2", "acct-3"}
        with pytest.raises(StreamArchivedError, match="stream 'acct-2' is archived") as refused:
            store.fetch_stream("acct-2")
        assert refused.value.info["streamId"] == "acct-2"
        shown = store.fetch_stream("acct-2", include_archived=True)
        assert (shown.archived, shown.version, len(shown.events)) == (True, 2, 2)
        assert store.fetch_stream("acct-1").archived is False
        assert not store.archive_stream("acct-2").changed, "archiving it again changes nothing"
        assert store.unarchive_stream("acct-2").changed
        assert not store.unarchive_stream("acct-2").changed
        assert len(store.read_all()) == 6


def test_appends_to_an_archived_stream_are_refused_alone_or_in_a_batch_and_change_nothing(
    store: EventStore, dsn: str
) -> None:
    deploy(store, sources(Counters=COUNTERS))  # inline, the Python engine: its append path too
    store.append_all(MESSAGES)
    store.archive_stream("acct-2")
    before, views = event_count(dsn), export_views(store)
    one = {"id": "acct-2", "data": {"$type": "Deposited", "amount": 5}}
    with pytest.raises(StreamArchivedError, match='stream "acct-2" is archived: unarchive it'):
        store.append(one)
    with pytest.raises(StreamArchivedError, match='message 2: stream "acct-2" is archived'):
        store.append_all([{"id": "acct-1", "data": {"$type": "Deposited", "amount": 1}}, one])
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.Error) as caught:  # the SQL entry says the same
        conn.execute("select pge_append(%s::jsonb)", (psycopg.types.json.Jsonb(one),))
    assert caught.value.sqlstate == "JPS23"
    assert (event_count(dsn), export_views(store)) == (before, views)
    store.unarchive_stream("acct-2")
    assert store.append(one).version == 3


def test_archiving_names_a_stream_that_does_not_exist(store: EventStore) -> None:
    with pytest.raises(UnknownStreamError, match='there is no stream "nope"'):
        store.archive_stream("nope")
    with pytest.raises(UnknownStreamError, match='there is no stream "nope"'):
        store.unarchive_stream("nope")


@pytest.mark.parametrize("engine", ["python", "plpython"])
def test_inline_views_are_kept_at_archive_and_a_rebuild_leaves_the_archived_stream_out(
    store: EventStore, engine: str
) -> None:
    deploy(store, sources(Counters=COUNTERS), engine=engine)
    store.append_all(MESSAGES)
    everything = export_views(store)
    assert everything == folded(MESSAGES)
    store.archive_stream("acct-2")
    assert export_views(store) == everything, "archiving rebuilds nothing"
    for name in ("Balance", "Totals", "ByAmount"):
        rebuild(store, name)
    assert export_views(store) == folded(remaining())
    store.unarchive_stream("acct-2")
    for name in ("Balance", "Totals", "ByAmount"):
        rebuild(store, name)
    assert export_views(store) == everything


def test_the_daemon_builds_without_archived_streams_and_counts_no_lag_for_them(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Counters=COUNTERS), lifecycles=dict.fromkeys(("Balance", "Totals", "ByAmount"), "async"))
    store.append_all(MESSAGES)
    store.archive_stream("acct-2")  # archived before the build, and the log's last events are its own
    store.append({"id": "acct-2-late", "type": "Account", "data": {"$type": "Deposited", "amount": 7}})
    store.archive_stream("acct-2-late")
    Daemon(dsn).run(until_caught_up=True)
    late = {"id": "acct-2-late", "type": "Account", "data": {"$type": "Deposited", "amount": 7}}
    assert export_views(store) == folded(remaining())
    assert {s.name: s.lag_events for s in projection_status(store)} == {"Balance": 0, "Totals": 0, "ByAmount": 0}
    store.unarchive_stream("acct-2-late")  # not reached yet: the daemon folds it when it goes on
    Daemon(dsn).run(until_caught_up=True)
    assert export_views(store) == folded([*remaining(), late])


def test_a_live_fold_of_an_archived_stream_is_refused_unless_asked_for(store: EventStore) -> None:
    store.append_all(MESSAGES)
    store.archive_stream("acct-3")
    with Projections(sources(Counters=COUNTERS)) as loaded:
        with pytest.raises(StreamArchivedError):
            aggregate(store, loaded, "Balance", "acct-3")
        assert aggregate(store, loaded, "Balance", "acct-3", include_archived=True) == {"balance": 27, "moves": 2}


def test_archiving_waits_for_an_append_to_the_stream_in_flight(store: EventStore, dsn: str) -> None:
    store.append_all(MESSAGES)
    with psycopg.connect(dsn) as writer:  # an append, not committed yet: it holds the stream's lock
        writer.execute("""select pge_append('{"id": "acct-1", "data": {"$type": "Deposited", "amount": 1}}')""")
        done: list[Any] = []
        archiver = threading.Thread(target=lambda: done.append(store.archive_stream("acct-1")))
        archiver.start()
        with psycopg.connect(dsn, autocommit=True) as probe:  # until the archive waits on the append's lock
            waiting = "select count(*) from pg_locks where locktype = 'advisory' and not granted"
            deadline = threading.Event()
            for _ in range(1000):
                if probe.execute(waiting).fetchone()[0]:
                    break
                deadline.wait(0.01)
            else:
                pytest.fail("the archive never waited for the append")
        assert not done
        writer.commit()
        archiver.join(10)
    assert done and done[0].changed
    assert store.fetch_stream("acct-1", include_archived=True).version == 3, "the append went in before the archive"


def test_only_roles_granted_it_archive_a_stream(store: EventStore, dsn: str) -> None:
    store.append_all(MESSAGES)
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("create role archive_app login")
        owner.execute("grant usage on schema public to archive_app")
        owner.execute("grant execute on function pge_append(jsonb) to archive_app")
    app = dsn + " user=archive_app"
    with psycopg.connect(app, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select pge_archive_stream('acct-1')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("update pge_streams set archived_at = now()")
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("grant execute on function pge_archive_stream(text, timestamptz) to archive_app")
    with psycopg.connect(app, autocommit=True) as conn:
        assert conn.execute("select pge_archive_stream('acct-1') ->> 'changed'").fetchone() == ("true",)
    with pytest.raises(StreamArchivedError):
        store.fetch_stream("acct-1")


# -- deleting a stream (soft): its tombstone ---------------------------------------------------------------

TOMBSTONE_CASES = [  # (messages after stream acct-1 at version 2, what the last one meets: None or an error's words)
    ([{"id": "acct-1", "data": {"$type": "$deleted"}}], None),
    ([{"id": "acct-1", "data": {"$type": "$deleted"}}, {"id": "acct-1", "data": {"$type": "Deposited"}}],
     'stream "acct-1" was deleted (at version 3): append with expected_version 3 to re-create it'),
    ([{"id": "acct-1", "data": {"$type": "$deleted"}}, {"id": "acct-1", "data": {"$type": "$deleted"}}],
     'stream "acct-1" is deleted already'),
    ([{"id": "nobody", "type": "Account", "data": {"$type": "$deleted"}}],
     'stream "nobody" does not exist: there is nothing to delete'),
    ([{"id": "acct-1", "data": {"$type": "$deleted"}},
      {"id": "acct-1", "expected_version": 3, "data": {"$type": "Deposited", "amount": 1}}], None),
]  # fmt: skip


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "batch"])
@pytest.mark.parametrize(("messages", "refusal"), TOMBSTONE_CASES)
def test_a_tombstone_deletes_a_stream_that_only_an_explicit_append_re_creates_in_sql_and_in_the_engine(
    store: EventStore, dsn: str, messages: list[dict[str, Any]], refusal: str | None, batched: bool
) -> None:
    """One message per append, or the same as one batch (all or nothing: none of it is written)."""
    store.append_all(MESSAGES)
    before = event_count(dsn)
    error: Exception | None = None
    try:
        if batched:
            store.append_all(messages)
        else:
            for message in messages:
                store.append(message)
    except JsprojError as exc:
        error = exc
    if refusal is None:
        assert error is None
        return
    assert error is not None and refusal in str(error), error
    assert isinstance(error, UnknownStreamError if "nothing to delete" in refusal else StreamDeletedError)
    written = 0 if batched else len(messages) - 1
    assert event_count(dsn) == before + written
    if batched:
        assert f"message {len(messages)}:" in str(error)
        return
    with Projections(sources(Counters=COUNTERS)) as loaded:  # the engine's own check of an events file agrees
        with pytest.raises(JsprojError, match=re.escape(refusal)):
            loaded.normalize(json.dumps(MESSAGES[:1] + messages), now="2026-01-01T00:00:00Z")


def test_delete_stream_appends_the_tombstone_and_a_re_creation_goes_on_from_it(store: EventStore) -> None:
    store.append_all(MESSAGES)
    deleted = store.delete_stream("acct-1", metadata={"by": "support"})
    assert deleted.version == 3
    with pytest.raises(StreamDeletedError, match="append with expected_version 3 to re-create it"):
        store.append(stream_id="acct-1", events=[{"$type": "Deposited", "amount": 1}])
    assert (
        store.append(stream_id="acct-1", events=[{"$type": "Deposited", "amount": 1}], expected_version=3).version == 4
    )
    assert [e.type for e in store.fetch_stream("acct-1").events] == ["Deposited", "Withdrawn", "$deleted", "Deposited"]


# -- under concurrent appends, and a daemon killed mid-rebuild -------------------------------------------------


def fold_of_what_remains(store: EventStore) -> dict[str, Any]:
    """A fold of the log as readers see it now (archived streams left out, tombstones in), by the Python host."""
    records = [{"streamId": e.stream_id, "streamType": e.stream_type, "version": e.version, "timestamp": None,
                "metadata": e.metadata, "event": e.event} for e in store.read_all(limit=100_000)]  # fmt: skip
    with Projections(sources(Counters=COUNTERS)) as loaded:
        return dict(simulate(loaded, as_messages(records)))


@pytest.mark.slow  # a daemon process killed midway
@pytest.mark.parametrize("operation", ["archive", "delete"])
def test_a_stream_archived_or_deleted_while_others_append_then_a_rebuild_killed_midway_leaves_views_right(
    store: EventStore, dsn: str, operation: str
) -> None:
    async_all = dict.fromkeys(("Balance", "Totals", "ByAmount"), "async")
    deploy(store, sources(Counters=COUNTERS), lifecycles=async_all)
    store.append_all([{"id": f"acct-{n}", "type": "Account", "data": [{"$type": "Deposited", "amount": n}] * 3}
                      for n in range(1, 201)])  # fmt: skip
    Daemon(dsn).run(until_caught_up=True)
    appended: list[int] = []

    def keep_appending() -> None:
        for _ in range(50):
            appended.append(store.append({"id": "acct-1", "data": {"$type": "Withdrawn", "amount": 1}}).version)

    writer = threading.Thread(target=keep_appending)
    writer.start()
    if operation == "archive":
        store.archive_stream("acct-2")
    else:
        store.delete_stream("acct-2")
    writer.join(30)
    assert appended == list(range(4, 54)), "every append went in, in order"
    with psycopg.connect(dsn) as conn:  # built again, by a daemon that is killed midway
        for name in async_all:
            progress.restart_build(conn, name)
    first = subprocess.Popen([str(JSPROJ), "daemon", "--dsn", dsn, "--page-size", "10", "--poll-interval", "0.05"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_until(lambda: building(dsn))
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()  # (killed already, unless the test failed before: never left running)
        first.wait(timeout=30)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("update pge_daemons set heartbeat_at = now() - make_interval(secs => %s)", (STALE_SECONDS + 1,))
    Daemon(dsn).run(until_caught_up=True)
    views = export_views(store)
    assert views == fold_of_what_remains(store)
    assert "acct-2" not in views["views"]["Balance"], f"{operation}d: its document is gone from the rebuilt view"


def building(dsn: str) -> bool:
    """Whether a projection is being built and has some of it done."""
    with psycopg.connect(dsn) as conn:
        return bool(conn.execute("select exists (select from pge_projection_progress where status = 'build'"
                                 " and events > 0)").fetchone()[0])  # fmt: skip


def test_a_stream_whose_row_has_no_version_yet_is_read_from_the_log_once_alone_or_in_a_batch(
    store: EventStore, dsn: str
) -> None:
    """Migration 0018 leaves every stream's version and tombstone unknown (null): the next append reads them from
    the log, and from then on the row keeps them."""
    store.append({"id": "a", "type": "T", "data": [{"$type": "X"}, {"$type": "X"}]})
    store.append({"id": "b", "type": "T", "data": {"$type": "X"}})
    store.append({"id": "b", "type": "T", "data": {"$type": "$deleted"}})
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("update pge_streams set version = null, deleted = null")
    with pytest.raises(JsprojError, match="at version 2, not the expected version 1"):
        store.append({"id": "a", "type": "T", "expected_version": 1, "data": {"$type": "X"}})
    assert store.append({"id": "a", "type": "T", "expected_version": 2, "data": {"$type": "X"}}).version == 3
    with pytest.raises(StreamDeletedError):  # its tombstone, read from the log
        store.append_all([{"id": "b", "type": "T", "data": {"$type": "X"}}])
    store.append_all([{"id": "b", "type": "T", "expected_version": 2, "data": {"$type": "X"}}])
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("select id, version, deleted from pge_streams order by id").fetchall()
    assert rows == [("a", 3, False), ("b", 3, False)]
    assert [store.fetch_stream(s).version for s in ("a", "b")] == [3, 3]
