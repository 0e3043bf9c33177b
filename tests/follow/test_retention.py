"""Retention per stream type, applied by the daemon: cold streams archived, old events erased, the views rebuilt.

An event's age is its ``appended_at`` (the store's clock): the tests make some events old by moving it back, as
the owner may (no message can set it).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from clihelp import JSPROJ
from jsproj.engine.events_file import as_messages
from jsproj.engine.projections import Projections
from jsproj.engine.simulation import simulate
from jsproj.errors import InputError
from jsproj.follow.daemon import STALE_SECONDS, Daemon
from jsproj.projections.deploy import deploy
from jsproj.projections.retention import Rule, apply_rules, clear_rule, rules, set_rule
from jsproj.projections.views import export_views
from jsproj.store.sync import EventStore

from projections import sources
from waiting import wait_until

COUNT = """
projections.projectStream('Sensor').named('Readings').by({
  $init: function () { return { values: [] }; },
  Read: function (s, e) { s.values.push(e.value === undefined ? 'erased' : e.value); }
});
projections.aggregate('Total').by({ Read: function (s, e) { s.sum = (s.sum || 0) + (e.value || 0); } }).async();
"""


def age(dsn: str, stream_id: str, days: int, below_version: int | None = None) -> None:
    """Move the stream's events (those below ``below_version``) ``days`` back in append time."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "update pge_events set appended_at = appended_at - make_interval(days => %s)"
            " where stream_id = %s and version < coalesce(%s, 9223372036854775807)",
            (days, stream_id, below_version),
        )


def read(stream_id: str, values: list[int]) -> dict[str, Any]:
    return {"id": stream_id, "type": "Sensor", "data": [{"$type": "Read", "value": v} for v in values]}


def test_rules_are_checked_kept_listed_and_cleared(store: EventStore) -> None:
    for bad, says in (
        (Rule("Sensor", "archive", max_count=5), "an archive rule takes max_age only"),
        (Rule("Sensor", "erase"), "needs max_age, max_count or truncate_before"),
        (Rule("Sensor", "shred", max_age=timedelta(days=1)), "archives or erases"),
        (Rule("Sensor", "erase", max_age=timedelta(0)), "longer than nothing"),
        (Rule("Sensor", "erase", truncate_before=1), "a version of 2 or more"),
    ):
        with pytest.raises(InputError, match=says):
            set_rule(store, bad)
    assert rules(store) == []
    set_rule(store, Rule("Sensor", "erase", max_count=2))
    set_rule(store, Rule("Sensor", "erase", max_age=timedelta(days=30), truncate_before=3))  # replaces it
    set_rule(store, Rule("Order", "archive", max_age=timedelta(days=365)))
    assert rules(store) == [Rule("Order", "archive", max_age=timedelta(days=365)),
                            Rule("Sensor", "erase", max_age=timedelta(days=30), truncate_before=3)]  # fmt: skip
    assert clear_rule(store, "Order") and not clear_rule(store, "Order")


def test_an_archive_rule_archives_the_streams_idle_longer_than_its_age(store: EventStore, dsn: str) -> None:
    store.append_all([read("sensor-old", [1]), read("sensor-new", [2])])
    age(dsn, "sensor-old", 400)
    set_rule(store, Rule("Sensor", "archive", max_age=timedelta(days=365)))
    [done] = apply_rules(store)
    assert (done.streams, done.events) == (1, 0)
    assert {e.stream_id for e in store.read_all()} == {"sensor-new"}
    assert store.fetch_stream("sensor-old", include_archived=True).archived
    assert apply_rules(store)[0].streams == 0, "archived already: nothing more"


def test_the_daemon_erases_what_an_erase_rule_says_and_rebuilds_the_views(
    store: EventStore, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    deploy(store, sources(Count=COUNT))
    store.append_all([read("sensor-1", [1, 2, 3, 4, 5]), read("sensor-2", [10, 20])])
    age(dsn, "sensor-2", 60, below_version=2)  # sensor-2's first reading is 60 days old
    set_rule(store, Rule("Sensor", "erase", max_age=timedelta(days=30), max_count=3))
    caplog.set_level(logging.INFO, logger="jsproj")
    worker = Daemon(dsn, retention=lambda: apply_rules(store, wait=False), retention_interval=3600)
    worker.run(until_caught_up=True)  # its first round applies the rules, then it builds what they reset
    assert "retention of Sensor: 0 streams archived, 3 events erased" in caplog.text
    views = export_views(store)
    assert views["views"]["Readings"] == {"sensor-1": {"values": ["erased", "erased", 3, 4, 5]},
                                          "sensor-2": {"values": ["erased", 20]}}  # fmt: skip
    assert views["aggregates"]["Total"] == {"sum": 3 + 4 + 5 + 20}
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select reason from pge_erasures").fetchall() == [
            ("retention of Sensor streams (older than 30d, more than 3 behind the last)",)
        ]
    worker = Daemon(dsn, retention=lambda: apply_rules(store, wait=False), retention_interval=3600)
    worker.run(until_caught_up=True)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from pge_erasures").fetchone() == (1,), "nothing left to erase"


#: Every stored kind, inline and async: Balance (a stream projection, inline), Totals and ByAmount (async).
KINDS = """
projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, moves: 0 }; },
  Deposited: function (s, e) { s.balance += e.amount || 0; s.moves += 1; }
});
projections.aggregate('Totals').by({
  $init: function () { return { events: 0, sum: 0 }; },
  $any: function (s, e) { s.events += 1; s.sum += e.amount || 0; }
}).async();
projections.projectView('ByAmount').identifiedBy(function (e) { return (e.amount || 0) % 3; }).by({
  $any: function (s) { s.n = (s.n || 0) + 1; }
}).async();
"""


def fold_of_what_remains(store: EventStore) -> dict[str, Any]:
    """A fold, by the Python host, of the log as readers see it now (archived streams out, erased data in)."""
    records = [{"streamId": e.stream_id, "streamType": e.stream_type, "version": e.version, "timestamp": None,
                "metadata": e.metadata, "event": e.event} for e in store.read_all(limit=100_000)]  # fmt: skip
    with Projections(sources(Kinds=KINDS)) as loaded:
        return dict(simulate(loaded, as_messages(records)))


def holding_a_build(watcher: psycopg.Connection) -> bool:
    """Whether, after the retention's erasure, an async projection is being built and has some of it done; if
    so, its progress row stays locked by ``watcher`` (the build's next page waits on it: it cannot end before the
    daemon is killed, however fast it runs). Otherwise the transaction ends, to look again."""
    row = watcher.execute("select from pge_projection_progress where status = 'build' and events > 0"
                          " and (select count(*) from pge_erasures) = 1 for update").fetchone()  # fmt: skip
    if row is None:
        watcher.rollback()
    return row is not None


@pytest.mark.slow  # a daemon process killed midway
def test_retention_applied_by_a_daemon_while_others_append_then_killed_mid_rebuild_leaves_views_right(
    store: EventStore, dsn: str
) -> None:
    deploy(store, sources(Kinds=KINDS))
    accounts = [{"id": f"acct-{n}", "type": "Account", "data": [{"$type": "Deposited", "amount": n}] * 3}
                for n in range(1, 201)]  # fmt: skip
    ledgers = [{"id": f"ledger-{n}", "type": "Ledger", "data": {"$type": "Deposited", "amount": 7}} for n in (1, 2, 3)]
    store.append_all(accounts + ledgers)
    for n in (1, 2):  # ledger-3 stays warm
        age(dsn, f"ledger-{n}", 400)
    Daemon(dsn).run(until_caught_up=True)
    set_rule(store, Rule("Account", "erase", max_count=2))  # each account's first deposit
    set_rule(store, Rule("Ledger", "archive", max_age=timedelta(days=365)))
    appended: list[tuple[str, int]] = []
    stop = threading.Event()

    def keep_appending() -> None:  # an account and the warm ledger, all along the retention and the rebuild
        while not stop.is_set():
            for stream in ("acct-1", "ledger-3"):
                done = store.append({"id": stream, "data": {"$type": "Deposited", "amount": 1}})
                appended.append((stream, done.version))

    writer = threading.Thread(target=keep_appending)
    writer.start()
    daemon = subprocess.Popen([str(JSPROJ), "daemon", "--dsn", dsn, "--page-size", "2", "--poll-interval", "0.05"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        with psycopg.connect(dsn) as watcher:  # the rules applied; a rebuild under way, held there
            wait_until(lambda: holding_a_build(watcher), interval=0.002)
            during = len(appended)
            wait_until(lambda: len(appended) > during)  # appends go on past the retention
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=30)
    finally:
        daemon.kill()  # (killed already, unless the test failed before: never left running)
        daemon.wait(timeout=30)
        stop.set()
        writer.join(30)
    for stream in ("acct-1", "ledger-3"):
        versions = [version for name, version in appended if name == stream]
        assert versions == list(range(versions[0], versions[0] + len(versions))), f"{stream}: every append went in"
    with psycopg.connect(dsn, autocommit=True) as conn:  # its heartbeat as old as a dead daemon's gets
        conn.execute("update pge_daemons set heartbeat_at = now() - make_interval(secs => %s)", (STALE_SECONDS + 1,))
    Daemon(dsn).run(until_caught_up=True)
    assert [store.fetch_stream(f"ledger-{n}", include_archived=True).archived for n in (1, 2, 3)] == [True, True, False]
    # erased: each account's first deposit, and acct-1's events more than 2 behind its last at the time
    erased = [e.stream_id for e in store.read_all(limit=100_000) if e.data == {"$erased": True}]
    assert len(erased) >= 200 and set(erased) == {f"acct-{n}" for n in range(1, 201)}
    views = export_views(store)
    assert views == fold_of_what_remains(store)
    assert views["aggregates"]["Totals"]["events"] == 600 + 1 + len(appended), "archived ledgers left out"
