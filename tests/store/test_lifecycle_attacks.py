"""The breaks a blind review of the stream lifecycle found (docs and documented grants only), each kept as a test.

Break N is the reviewer's numbering; each test fails on the code the review attacked.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from jsproj.errors import InputError, StoreError
from jsproj.follow.daemon import Daemon
from jsproj.projections import erasure
from jsproj.projections.deploy import deploy
from jsproj.projections.erasure import erase
from jsproj.store.sync import EventStore
from test_erasure import tables_with

from conformance_hosts import engine_params, require_language
from projections import sources
from waiting import wait_until

SECRET = "jane@secret.example"  # noqa: S105 -- personal data to erase, not a password
PEOPLE = """projections.projectStream('Customer').named('People').by({
  Registered: function (s, e) { s.email = e.email; }
});"""


def register(store: EventStore, stream: str = "customer-42", email: str = SECRET) -> None:
    store.append({"id": stream, "type": "Customer", "metadata": {"by": "signup"},
                  "data": {"$type": "Registered", "email": email}})  # fmt: skip


def test_break_1_an_append_in_repeatable_read_cannot_slip_past_an_archive(store: EventStore, dsn: str) -> None:
    register(store, "c-1")
    with psycopg.connect(dsn) as app:
        app.execute("begin isolation level repeatable read")
        app.execute("select count(*) from pge_events")  # its snapshot: from before the archive
        store.archive_stream("c-1")
        with pytest.raises(psycopg.errors.SerializationFailure):
            app.execute("""select pge_append('{"id": "c-1", "data": {"$type": "Registered", "email": "late"}}')""")
    assert store.fetch_stream("c-1", include_archived=True).version == 1, "the archived stream took nothing"


def test_break_2_an_erasure_empties_the_tables_of_retired_versions(store: EventStore, dsn: str) -> None:
    deploy(store, sources(People=PEOPLE), lifecycles={"People": "async"})
    register(store)
    Daemon(dsn).run(until_caught_up=True)
    deploy(store, sources(People=PEOPLE.replace("});", "}).version(2);")), lifecycles={"People": "async"})
    Daemon(dsn).run(until_caught_up=True)  # builds version 2 beside, switches: version 1's table is kept
    assert "pge_v1_people" in tables_with(dsn, SECRET)
    erase(store, "customer-42", reason="request 1")
    assert tables_with(dsn, SECRET) == []


def test_break_3_an_async_view_whose_rebuild_fails_holds_nothing_of_the_erased_events(
    store: EventStore, dsn: str
) -> None:
    lower = PEOPLE.replace("s.email = e.email;", "s.email = e.email.toLowerCase();")  # throws on an erased event
    deploy(store, sources(People=lower), lifecycles={"People": "async"})
    register(store)
    register(store, "customer-7", "bob@example.com")
    Daemon(dsn).run(until_caught_up=True)
    with pytest.raises(Exception, match="People stopped during its rebuild"):
        erase(store, "customer-42", reason="request 2")
    assert tables_with(dsn, SECRET) == []


def test_break_4_code_of_one_file_sharing_what_it_keeps_is_rebuilt_with_it(store: EventStore, dsn: str) -> None:
    stash = """var stash = [];
projections.projectEvent('Registered').named('Seen').by(function (e) { stash.push(e.email); return null; });
projections.aggregate('Pings').by({ Ping: function (s) { s.kept = stash.slice(); } });"""
    deploy(store, sources(Stash=stash))
    register(store)
    store.append({"id": "ping-1", "type": "Ping", "data": {"$type": "Ping"}})
    assert "pge_aggregates" in tables_with(dsn, SECRET)
    erase(store, "customer-42", reason="request 3")
    assert tables_with(dsn, SECRET) == []


def test_break_5_an_idle_transaction_ends_an_erasure_instead_of_every_append(
    store: EventStore, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(store, sources(People=PEOPLE))
    register(store)
    monkeypatch.setattr(erasure, "LOCK_TIMEOUT", 0.3)
    with psycopg.connect(dsn) as idle:
        idle.execute("select count(*) from pge_projections_people")  # a reader left in its transaction
        with pytest.raises(StoreError, match=r"could not take a lock within 0\.3 s"):
            erase(store, "customer-42", reason="request 4")
        appended: list[Any] = []
        writer = threading.Thread(target=lambda: appended.append(register(store, "customer-8", "x@example.com")))
        writer.start()
        writer.join(10)
        assert appended == [None], "appends go on while the reader idles"
    assert "pge_events" in tables_with(dsn, SECRET), "nothing was erased"


def test_break_6_an_empty_metadata_filter_is_not_a_choice_of_events(store: EventStore) -> None:
    register(store)
    with pytest.raises(InputError, match=r"not \{\}"):
        erase(store, metadata={}, reason="request 5")
    assert store.fetch_stream("customer-42").events[0].data == {"email": SECRET}


def test_break_7_an_erasure_clears_the_errors_of_the_projections_it_reached(store: EventStore, dsn: str) -> None:
    parse = """projections.projectStream('Customer').named('People').by({
  Registered: function (s, e) { s.email = e.email; },
  Contacted: function (s) { s.parsed = JSON.parse(s.email); }
});"""
    deploy(store, sources(People=PEOPLE), lifecycles={"People": "async"})
    register(store)
    store.append({"id": "customer-42", "data": {"$type": "Contacted"}})
    Daemon(dsn).run(until_caught_up=True)
    deploy(store, sources(People=parse.replace("});", "}).version(2);")), lifecycles={"People": "async"})
    Daemon(dsn).run(until_caught_up=True)  # version 2's build fails on Contacted, quoting the document
    assert "pge_projection_versions" in tables_with(dsn, SECRET)
    erase(store, "customer-42", types="Registered", reason="request 6")
    assert "pge_projection_versions" not in tables_with(dsn, SECRET)


def test_break_8_retention_leaves_a_stream_that_took_an_event_since_it_was_found_idle(
    store: EventStore, dsn: str
) -> None:
    register(store, "order-1")
    with psycopg.connect(dsn, autocommit=True) as conn:
        (changed,) = conn.execute("select (pge_archive_stream('order-1', now() - interval '1 hour') ->> 'changed')"
                                  "::boolean").fetchone()  # fmt: skip
    assert changed is False
    assert not store.fetch_stream("order-1").archived


# -- the second blind review (after upcasters, retention and the Node client's lifecycle calls) ----------------

#: An upcaster file whose code keeps what one event had and gives it to another, of another type and stream.
CARRIER = """var stash = null;
projections.upcast('Registered').from(1).by(function (e) { stash = e.email; });
projections.upcast('Pinged').from(1).by(function (e) { e.leak = stash; });"""
PINGS = """projections.projectStream('Device').named('Pings').by({
  Pinged: function (s, e) { s.leak = e.leak; }
});"""


@pytest.mark.parametrize("engine", engine_params(["python", "plpython", "plv8", "pljs"]))
def test_review_2_break_1_an_erasure_rebuilds_what_an_upcasters_code_may_have_passed_on(
    store: EventStore, dsn: str, engine: str
) -> None:
    if engine in ("plv8", "pljs"):
        require_language(dsn, engine)
    deploy(store, sources(Upcasters=CARRIER, People=PEOPLE, Pings=PINGS), engine=engine)
    register(store)
    store.append({"id": "device-1", "type": "Device", "data": {"$type": "Pinged"}})
    assert "pge_projections_pings" in tables_with(dsn, SECRET)
    done = erase(store, "customer-42", reason="request 7")
    assert "Pings" in done.rebuilt, "an upcaster saw the erased event: everything it feeds is rebuilt"
    assert tables_with(dsn, SECRET) == []


def test_review_2_break_1_a_dead_letter_quoting_what_an_upcaster_passed_on_is_cleared(
    store: EventStore, dsn: str
) -> None:
    boom = """projections.projectStream('Device').named('Boom').by({
  Pinged: function (s, e) { throw new Error('bad ping: ' + e.leak); }
});"""
    deploy(store, sources(Upcasters=CARRIER, People=PEOPLE, Boom=boom), lifecycles={"People": "async", "Boom": "async"},
           on_error={"Boom": "dead-letter"})  # fmt: skip
    register(store)
    store.append({"id": "device-1", "type": "Device", "data": {"$type": "Pinged"}})
    Daemon(dsn).run(until_caught_up=True)
    assert "pge_dead_letters" in tables_with(dsn, SECRET)
    erase(store, "customer-42", reason="request 8")
    assert tables_with(dsn, SECRET) == []


@pytest.mark.parametrize("engine", engine_params(["python", "plpython", "plv8", "pljs"]))
def test_review_2_break_2_an_erasure_rebuilds_a_view_whose_key_function_routes_by_what_it_saw_before(
    store: EventStore, dsn: str, engine: str
) -> None:
    if engine in ("plv8", "pljs"):
        require_language(dsn, engine)
    seen = """var seen = 0;
projections.projectView('Seen').identifiedBy(function () { seen += 1; return seen >= 2 ? 'all' : null; }).by({
  Registered: function (s, e) { s.emails = (s.emails || []).concat([e.email]); }
});"""
    deploy(store, sources(Seen=seen), engine=engine)
    register(store, "customer-0", "someone@else.example")
    register(store)
    assert "pge_projections_seen" in tables_with(dsn, SECRET)
    done = erase(store, "customer-42", reason="request 9")  # routed in a fresh sandbox, the event goes nowhere
    assert done.rebuilt == ["Seen"], "it handles the erased events' type: rebuilt, whatever its key function says"
    assert tables_with(dsn, SECRET) == []


def test_review_2_an_erasure_and_appends_to_its_stream_never_deadlock(store: EventStore, dsn: str) -> None:
    """(Found by the retention test under concurrent appends: the erasure took the streams' append locks after
    the log's, while an append held its stream's and waited for the log.)"""
    register(store)
    with psycopg.connect(dsn) as app:  # an append to the stream holds its lock, then waits for the log
        app.execute("select pg_advisory_xact_lock(1246974036, hashtext('customer-42'))")
        with psycopg.connect(dsn) as holder:  # the erasure takes the log first (as it does), then ...
            holder.execute("lock table pge_events in share mode")
            waiting = threading.Thread(
                target=lambda: app.execute(
                    """select pge_append('{"id": "customer-42", "data": {"$type": "Registered", "email": "x"}}')"""
                )
            )
            waiting.start()
            wait_until(lambda: lock_waits(dsn) >= 1)
            holder.execute("select pge_erase_events(array[1]::bigint[], 'request 10', '{}')")  # ... no deadlock
            holder.commit()
        waiting.join(30)
        app.commit()
    assert [e.data for e in store.read_all()] == [{"$erased": True}, {"email": "x"}]


def lock_waits(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("select count(*) from pg_locks where not granted").fetchone()[0])
