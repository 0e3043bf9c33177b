"""Erasing events: after ``erase``, no byte of the erased data is readable through any jsproj read, view, dead
letter, error, log line or table of the store, and the views equal a fold of the log as it now is.

The erased events carry a marker string in their data and metadata; projections of every stored kind, inline
and async, copy it into their documents (a view is even keyed by it), one dead-letters the events that carry
it and one stops on them, both with the marker in their error. The test first shows the marker is found
everywhere it then must be gone from (so the search itself works), erases, and searches again.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
from typing import Any

import psycopg
import pytest
from psycopg import sql

from clihelp import JSPROJ, jsproj
from jsproj.engine.projections import Projections
from jsproj.engine.simulation import simulate
from jsproj.errors import InputError
from jsproj.follow.daemon import STALE_SECONDS, Daemon
from jsproj.projections.deploy import deploy
from jsproj.projections.erasure import erase
from jsproj.projections.operations import list_dead_letters
from jsproj.projections.status import projection_status
from jsproj.projections.views import export_views
from jsproj.store.sync import EventStore

from projections import SLOW, sources
from waiting import wait_until

MARKER = "Jane-Doe-7f3a9c"

#: Every stored kind copies the note; Letters dead-letters a noted event, Stopper stops on one (its error says
#: the note); Plain never sees a note (its views must stay as they were).
NOTES = """
projections.projectStream('Account').named('Notes').by({
  $init: function () { return { notes: [], sum: 0 }; },
  Deposited: function (s, e) { s.sum += e.amount || 0; if (e.note) s.notes.push(e.note); }
});
projections.aggregate('AllNotes').by({
  $init: function () { return { notes: [] }; },
  Deposited: function (s, e) { if (e.note) s.notes.push(e.note); }
});
projections.projectView('ByNote').identifiedBy(function (e) { return e.note || 'none'; }).by({
  Deposited: function (s) { s.n = (s.n || 0) + 1; }
});
projections.projectEvent('Deposited').named('Receipts').by(function (e) {
  return { $id: e.$id, note: e.note || null };
});
projections.aggregate('Letters').by({
  Deposited: function (s, e) { if (e.note) throw new Error('no notes please: ' + e.note); s.n = (s.n || 0) + 1; }
});
projections.aggregate('Stopper').by({
  Deposited: function (s, e) { if (e.note) throw new Error('stopped on ' + e.note); s.n = (s.n || 0) + 1; }
});
projections.projectStream('Plain').named('Plain').by({ Deposited: function (s, e) { s.sum = (s.sum || 0) + e.amount; } });
"""
ASYNC = {"AllNotes": "async", "Receipts": "async", "Letters": "async", "Stopper": "async"}
SECRET = [
    {"id": "acct-jane", "type": "Account", "metadata": {"customer": MARKER},
     "data": [{"$type": "Deposited", "amount": 5, "note": MARKER}, {"$type": "Deposited", "amount": 7, "note": MARKER}]},
]  # fmt: skip
CLEAN = [
    {"id": "acct-bob", "type": "Account", "data": [{"$type": "Deposited", "amount": 3}]},
    {"id": "plain-1", "type": "Plain", "data": [{"$type": "Deposited", "amount": 2}]},
]


def tables_with(dsn: str, text: str) -> list[str]:
    """Every table of the store's schema (the pge_ tables and the document tables) with a row holding ``text``."""
    query = "select exists (select from {} t where t::text like %s)"
    with psycopg.connect(dsn) as conn:
        names = [n for (n,) in conn.execute("select tablename from pg_tables where schemaname = 'public'")]
        found = [(n, conn.execute(sql.SQL(query).format(sql.Identifier(n)), (f"%{text}%",)).fetchone()) for n in names]
    return [name for name, row in found if row and row[0]]


def reads_with(store: EventStore, dsn: str, text: str) -> list[str]:
    """Which of jsproj's reads (the library's and the CLI's) show ``text``."""
    shown = {
        "read_all": [e.to_dict() for e in store.read_all(include_archived=True)],
        "fetch_stream": store.fetch_stream("acct-jane", include_archived=True).to_dict(),
        "export_views": export_views(store),
        "dead_letters": [repr(letter) for letter in list_dead_letters(store)],
        "status": [repr(s) for s in projection_status(store)],
    }
    for command in (["stream", "acct-jane"], ["events"], ["dead-letters"], ["status"], ["export"]):
        done = jsproj(*command, "--json", "--dsn", dsn)
        shown[" ".join(command)] = done.stdout + done.stderr
    return [name for name, value in shown.items() if text in json.dumps(value, default=str)]


def folded(store: EventStore) -> dict[str, Any]:
    """The views a fold of the log as it is now gives (the erased events with their marker, not their data)."""
    messages = [
        {
            "id": stream.id,
            "type": stream.type,
            "data": [{"$type": e.type, "$id": e.event_id, **e.data} for e in stream.events],
        }
        for stream in (store.fetch_stream(s) for s in ("acct-jane", "acct-bob", "plain-1"))
    ]
    with Projections(sources(Notes=NOTES)) as loaded:
        views = dict(simulate(loaded, messages))
    return views


@pytest.mark.parametrize("engine", ["python", "plpython"])
def test_after_an_erasure_no_byte_of_the_erased_data_is_readable_anywhere(
    store: EventStore, dsn: str, engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    deploy(store, sources(Notes=NOTES), engine=engine, lifecycles=ASYNC,
           on_error={"Letters": "dead-letter"})  # fmt: skip
    store.append_all(CLEAN)
    store.append_all(SECRET)
    with pytest.raises(Exception, match="Stopper"):  # it stops on the secret, its error saying it
        Daemon(dsn).run(until_caught_up=True)
    plain = export_views(store)["views"]["Plain"]
    assert set(tables_with(dsn, MARKER)) >= {
        "pge_events",
        "pge_dead_letters",
        "pge_projection_progress",
        "pge_aggregates",
        "pge_projections_notes",
        "pge_projections_bynote",
    }
    assert set(reads_with(store, dsn, MARKER)) >= {"read_all", "fetch_stream", "export_views", "dead_letters"}

    caplog.set_level(logging.DEBUG, logger="jsproj")
    done = erase(store, "acct-jane", reason="erasure request 42")
    # (Plain saw none of them, but it is in their file: rebuilt too, as code of one file may share what it keeps)
    assert (done.events, sorted(done.rebuilt)) == (2, ["ByNote", "Notes", "Plain"])
    assert sorted(done.swapped) == ["AllNotes", "Letters", "Receipts", "Stopper"]
    Daemon(dsn).run(until_caught_up=True)

    assert tables_with(dsn, MARKER) == []
    assert reads_with(store, dsn, MARKER) == []
    assert MARKER not in caplog.text
    assert export_views(store) == folded(store)
    assert export_views(store)["views"]["Plain"] == plain
    assert [e.data for e in store.fetch_stream("acct-jane").events] == [{"$erased": True}] * 2
    assert store.fetch_stream("acct-jane").version == 2, "positions and versions stay"
    with psycopg.connect(dsn) as conn:
        (reason, events, by) = conn.execute("select reason, events, erased_by from pge_erasures").fetchone()
    assert (reason, events, by) == ("erasure request 42", 2, "jsproj")


def test_an_erasure_needs_a_choice_of_events_and_a_reason_and_may_choose_by_filters(store: EventStore) -> None:
    store.append_all(SECRET + CLEAN)
    with pytest.raises(InputError, match="needs a stream or a filter"):
        erase(store, reason="everything?")
    with pytest.raises(InputError, match="needs a reason"):
        erase(store, "acct-jane", reason=" ")
    assert erase(store, "nobody", reason="r").events == 0
    done = erase(store, stream_types="Account", metadata={"customer": MARKER}, reason="by filter")
    assert done.events == 2
    assert [e.stream_id for e in store.read_all() if e.data == {"$erased": True}] == ["acct-jane", "acct-jane"]


def test_an_erasure_while_others_append_loses_no_append_and_the_views_fold_what_remains(
    store: EventStore, dsn: str
) -> None:
    deploy(store, sources(Notes=NOTES), lifecycles=ASYNC, on_error={"Letters": "dead-letter", "Stopper": "dead-letter"})
    store.append_all(CLEAN + SECRET)
    appended: list[int] = []
    stop = threading.Event()

    def keep_appending() -> None:  # another stream, all along the erasure (which holds appends off a moment)
        while not stop.is_set() and len(appended) < 200:
            appended.append(store.append({"id": "acct-bob", "data": {"$type": "Deposited", "amount": 1}}).version)

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        wait_until(lambda: len(appended) >= 5)
        erase(store, "acct-jane", reason="request 43")
    finally:
        stop.set()
        writer.join(30)
    Daemon(dsn).run(until_caught_up=True)
    assert appended == list(range(2, 2 + len(appended))), "every append went in, in order"
    assert store.fetch_stream("acct-bob").version == 1 + len(appended)
    assert export_views(store) == folded(store)
    assert tables_with(dsn, MARKER) == []


@pytest.mark.slow  # a daemon process killed midway
def test_a_daemon_killed_mid_rebuild_after_an_erasure_leaves_nothing_of_it(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Slow=SLOW, Notes=NOTES), lifecycles={"Slow": "async", **ASYNC},
           on_error={"Letters": "dead-letter", "Stopper": "dead-letter"})  # fmt: skip
    store.append_all([{"id": f"acct-{n}", "type": "Account", "data": [{"$type": "Deposited", "amount": n}] * 3}
                      for n in range(100)] + SECRET)  # fmt: skip
    Daemon(dsn).run(until_caught_up=True)
    erase(store, "acct-jane", reason="request 44", wait=False)  # the async views to be built again
    first = subprocess.Popen([str(JSPROJ), "daemon", "--dsn", dsn, "--page-size", "10", "--poll-interval", "0.05"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_until(lambda: building(dsn, "Slow"))
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()  # (killed already, unless the test failed before: never left running)
        first.wait(timeout=30)
    with psycopg.connect(dsn, autocommit=True) as conn:  # its heartbeat as old as a dead daemon's gets
        conn.execute("update pge_daemons set heartbeat_at = now() - make_interval(secs => %s)", (STALE_SECONDS + 1,))
    Daemon(dsn).run(until_caught_up=True)
    assert export_views(store)["aggregates"]["Slow"] == {"n": 302}
    assert tables_with(dsn, MARKER) == []


def building(dsn: str, name: str) -> bool:
    """Whether ``name`` is being built and has written some of it (its staging table)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select status, events from pge_projection_progress where name = %s", (name,)).fetchone()
    return row is not None and row[0] == "build" and row[1] > 0
