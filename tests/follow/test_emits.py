"""Events projections write (KurrentDB's emit and linkTo): appended by the daemon, each exactly once.

The permission (``deploy --emit``), the ids made of the projection, the
source event and the emit's index, the refusals, and the acceptance of
issue 32: after three ``kill -9`` of the daemon mid-page and a rebuild,
every emitted event exists exactly once (docs/from-kurrentdb.md#emit-and-linkto).
"""

from __future__ import annotations

import signal
import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

from clihelp import jsproj
from follow.test_daemon import daemon_process, progress
from jsproj import errors
from jsproj.follow.daemon import STALE_SECONDS, Daemon, ProjectionStoppedError
from jsproj.projections.deploy import deploy
from jsproj.projections.operations import rebuild
from jsproj.projections.status import projection_status
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore
from roles import as_role, login_roles

from waiting import wait_until

#: jsproj's namespace for the ids of emitted events (sql/functions/emits.sql).
NAMESPACE = uuid.UUID("5c0f2f5e-3b1d-4f6a-9c3e-6d1b7a2e9f40")

#: A KurrentDB projection that asks for a shipment per order placed and links each order's event (slow:
#: ~2 ms an event, so that a kill lands inside a page).
SHIPPING = """
fromCategory('order').foreachStream().when({
  $init: function () { return { placed: 0 }; },
  Placed: function (s, e) {
    var x = 0; for (var i = 0; i < SPIN; i++) x = (x * 31 + i) | 0;
    s.placed += 1 + (x & 0);
    emit('shipment-' + e.body.n, 'ShipmentRequested', { order: e.streamId, n: e.body.n }, { why: 'placed' });
    linkTo('placed-orders', e);
  }
});
"""


def shipping(spin: int = 0) -> list[dict[str, str]]:
    return [{"file": "shipping.js", "source": SHIPPING.replace("SPIN", str(spin))}]


def place(store: EventStore, count: int, start: int = 0) -> None:
    """``count`` orders placed (one event each, in streams order-<n % 7>)."""
    for n in range(start, start + count):
        store.append({"id": f"order-{n % 7}", "type": "order", "data": {"$type": "Placed", "n": n}})


def registered(dsn: str, pid: int) -> bool:
    """Whether the daemon of OS process ``pid`` has said it is alive (pge_daemons)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute("select from pge_daemons where pid = %s", (pid,)).fetchone() is not None


def emitted(dsn: str) -> list[tuple[str, str, str, str, str]]:
    """Every event the projection emitted: (id, caused by, type, stream, stream type), in log order."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """select e.id::text, e.metadata ->> '$causedBy', e.type, e.stream_id, s.type
               from pge_events e join pge_streams s on s.id = e.stream_id
               where e.metadata ->> '$projection' = 'shipping' order by e.position"""
        ).fetchall()
    return [tuple(row) for row in rows]


def sources_of(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("select id::text from pge_events where type = 'Placed' order by position")]


def assert_each_emitted_once(dsn: str, orders: int) -> None:
    """Two events per order placed (the shipment asked for, the link), no more, under their deterministic ids."""
    found = emitted(dsn)
    with psycopg.connect(dsn) as conn:
        key = conn.execute("select key from pge_emit_key").fetchone()[0]
        code = conn.execute("select hash from pge_projection_definitions where name = 'shipping'").fetchone()[0]
    want = {}
    for source in sources_of(dsn):
        for index, kind in enumerate(("ShipmentRequested", "$>")):
            want[str(uuid.uuid3(NAMESPACE, f"{key}/shipping/{code}/{source}/{index}"))] = (source, kind)
    assert len(want) == 2 * orders
    assert len(found) == len({row[0] for row in found}), "an event emitted twice"
    assert {row[0]: (row[1], row[2]) for row in found} == want


def test_an_emitting_projection_appends_each_event_once_and_a_rebuild_appends_nothing(
    store: EventStore, dsn: str
) -> None:
    place(store, 5)
    report = deploy(store, shipping(), lifecycles={"shipping": "async"}, emits=["shipping"])
    assert report.building == ["shipping"]
    Daemon(dsn, page_size=3).run(until_caught_up=True)  # the build emits for the five events before
    place(store, 9, start=5)
    Daemon(dsn, page_size=4).run(until_caught_up=True)  # pages emit with the progress they move
    assert_each_emitted_once(dsn, 14)
    shipment = store.fetch_stream("shipment-12")
    assert [(e.type, e.data, e.stream_type) for e in shipment.events] == [
        ("ShipmentRequested", {"order": "order-5", "n": 12}, "shipment")
    ]
    metadata = shipment.events[0].metadata
    assert metadata is not None and metadata["why"] == "placed" and metadata["$emitDepth"] == 1
    assert metadata["$causedBy"] == metadata["$correlationId"] == sources_of(dsn)[12]
    rebuild(store, "shipping")
    Daemon(dsn).run(until_caught_up=True)
    assert_each_emitted_once(dsn, 14)
    assert fetch_view(store, "shipping")["order-5"] == {"placed": 2}


def test_readers_resolve_a_projections_links_to_the_events_they_link(store: EventStore, dsn: str) -> None:
    place(store, 3)
    deploy(store, shipping(), lifecycles={"shipping": "async"}, emits=["shipping"])
    Daemon(dsn).run(until_caught_up=True)
    links = store.fetch_stream("placed-orders")
    assert [e.data for e in links.events] == [{"link": "0@order-0"}, {"link": "0@order-1"}, {"link": "0@order-2"}]
    resolved = store.fetch_stream("placed-orders", resolve_links=True)
    assert [(e.stream_id, e.type, e.data) for e in resolved.events] == [
        (f"order-{n}", "Placed", {"n": n}) for n in range(3)
    ]


def test_without_the_permission_an_emitting_handler_stops_its_projection_and_nothing_is_appended(
    store: EventStore, dsn: str
) -> None:
    place(store, 2)
    deploy(store, shipping(), lifecycles={"shipping": "async"})
    with pytest.raises(ProjectionStoppedError, match="shipping stopped"):
        Daemon(dsn).run(until_caught_up=True)
    (status,) = projection_status(store)
    assert status.status == "stopped"
    assert "may not write events: only an async projection deployed with --emit shipping" in str(status.error)
    assert emitted(dsn) == []


def test_an_inline_projection_that_emits_fails_the_append_it_runs_in(store: EventStore) -> None:
    deploy(store, shipping())  # inline by default
    with pytest.raises(errors.ProjectionError, match="shipping may not write events"):
        place(store, 1)
    with pytest.raises(errors.UnknownStreamError):
        store.fetch_stream("order-0")


def test_the_emit_permission_is_for_async_projections_only(store: EventStore) -> None:
    with pytest.raises(errors.InputError, match="--emit shipping: only async projections write events"):
        deploy(store, shipping(), emits=["shipping"])
    with pytest.raises(errors.UnknownProjectionError, match="--emit names projections that are not defined: nope"):
        deploy(store, shipping(), lifecycles={"shipping": "async"}, emits=["nope"])


def test_the_store_refuses_emits_of_a_projection_without_the_permission(store: EventStore, dsn: str) -> None:
    """The engine never hands them over; the store checks all the same (pge_append_emitted)."""
    deploy(store, shipping(), lifecycles={"shipping": "async"})
    emit = {"causedBy": str(uuid.uuid4()), "index": 0, "streamId": "x-1", "eventType": "T", "data": {}, "metadata": {}}
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.Error, match="without the permission") as caught:
        conn.execute("select pge_append_emitted(%s)", (Jsonb({"shipping": {"emits": [emit]}}),))
    assert caught.value.sqlstate == "JP403"


@pytest.mark.slow  # a daemon process killed three times midway, then a rebuild
def test_after_three_kills_mid_page_and_a_rebuild_every_emitted_event_exists_exactly_once(
    store: EventStore, dsn: str
) -> None:
    orders = 600
    deploy(store, shipping(spin=800_000), lifecycles={"shipping": "async"}, emits=["shipping"])
    Daemon(dsn).run(until_caught_up=True)  # built (no event yet): what follows is applied page by page
    place(store, orders)
    for _ in range(3):
        daemon = daemon_process(dsn, "--page-size", "25")
        try:  # a page of 25 events takes ~50 ms: the kill lands inside one (or between two)
            # Its own pages: the killed one's backend may still commit the page it was sent before the kill.
            wait_until(lambda pid=daemon.pid: registered(dsn, pid))
            before = progress(dsn, "shipping")[1]
            wait_until(lambda before=before: progress(dsn, "shipping")[1] > before)
            daemon.send_signal(signal.SIGKILL)
        finally:
            daemon.wait(timeout=30)
        assert emitted(dsn), "the daemon emitted before it was killed"
        with psycopg.connect(dsn, autocommit=True) as conn:  # its heartbeat aged: the next daemon takes over at once
            aged = conn.execute("update pge_daemons set heartbeat_at = now() - make_interval(secs => %s) "
                                "where pid = %s", (STALE_SECONDS + 1, daemon.pid)).rowcount  # fmt: skip
        assert aged == 1, "the killed daemon left its row behind"
    assert len(emitted(dsn)) < 2 * orders, "killed before it was done"
    finished = jsproj("daemon", "--dsn", dsn, "--until-caught-up", "--poll-interval", "0.05")
    assert finished.returncode == 0, finished.stderr
    assert_each_emitted_once(dsn, orders)
    rebuilt = jsproj("rebuild", "shipping", "--dsn", dsn)
    assert rebuilt.returncode == 0, rebuilt.stderr
    finished = jsproj("daemon", "--dsn", dsn, "--until-caught-up", "--poll-interval", "0.05")
    assert finished.returncode == 0, finished.stderr
    assert_each_emitted_once(dsn, orders)
    assert sum(doc["placed"] for doc in fetch_view(store, "shipping").values()) == orders


def test_an_application_role_with_the_documented_grants_cannot_append_as_a_projection(
    store: EventStore, dsn: str
) -> None:
    """pge_append_emitted writes with the owner's rights: granted to no one, an application cannot call it to
    append events that look emitted (docs/deploy.md#privileges)."""
    deploy(store, shipping(), lifecycles={"shipping": "async"}, emits=["shipping"])
    with psycopg.connect(dsn, autocommit=True) as admin:
        login_roles(admin, "emits_app")
        admin.execute("grant usage on schema public to emits_app")
        admin.execute("grant execute on function pge_append(jsonb) to emits_app")
        admin.execute("grant select on pge_projections_shipping to emits_app")
    emit = {"causedBy": str(uuid.uuid4()), "index": 0, "streamId": "x-1", "eventType": "T", "data": {}, "metadata": {}}
    with psycopg.connect(as_role(dsn, "emits_app")) as app, pytest.raises(psycopg.Error) as caught:
        app.execute("select pge_append_emitted(%s)", (Jsonb({"shipping": {"emits": [emit]}}),))
    assert caught.value.sqlstate == "42501"  # permission denied
    with psycopg.connect(as_role(dsn, "emits_app")) as app, pytest.raises(psycopg.Error) as caught:
        app.execute("select key from pge_emit_key")  # what would let it take an emitted event's id first
    assert caught.value.sqlstate == "42501"
    assert emitted(dsn) == []


# Review 6 (a blind attack on emit and linkTo): each break, kept.


def test_review_6_a_changed_projection_emits_its_own_events_never_taken_for_the_old_codes(
    store: EventStore, dsn: str
) -> None:
    old = "fromCategory('order').when({ Placed: function (s, e) { emit('to-A', 'Shipped', { v: 1 }); } });"
    new = ("fromCategory('order').when({ Placed: function (s, e) { emit('to-B', 'Invoiced', { v: 2 }); "
           "emit('to-C', 'Billed', { v: 2 }); } });")  # fmt: skip
    deploy(store, [{"file": "p.js", "source": old}], lifecycles={"p": "async"}, emits=["p"])
    place(store, 1)
    Daemon(dsn).run(until_caught_up=True)
    deploy(store, [{"file": "p.js", "source": new}], lifecycles={"p": "async"}, emits=["p"])
    Daemon(dsn).run(until_caught_up=True)
    streams = {stream: len(store.fetch_stream(stream).events) for stream in ("to-A", "to-B", "to-C")}
    assert streams == {"to-A": 1, "to-B": 1, "to-C": 1}, "the old code's event stays; the new code's are its own"


def test_review_6_a_new_version_of_an_emitting_projection_builds_emitting_nothing_then_emits(
    store: EventStore, dsn: str
) -> None:
    def code(version: int) -> list[dict[str, str]]:
        return [{"file": "P.js", "source": "projections.projectStream('order').named('P').by({ Placed: function (s, e) "
                 f"{{ emit('v{version}-' + e.n, 'Seen', {{}}); }} }}).version({version});"}]  # fmt: skip

    deploy(store, code(1), lifecycles={"P": "async"}, emits=["P"])
    place(store, 2)
    Daemon(dsn).run(until_caught_up=True)
    deploy(store, code(2), lifecycles={"P": "async"}, emits=["P"])
    Daemon(dsn).run(until_caught_up=True)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select version from pge_projection_definitions where name = 'P'").fetchone() == (2,)
    place(store, 1, start=2)
    Daemon(dsn).run(until_caught_up=True)
    with psycopg.connect(dsn) as conn:
        written = [r[0] for r in conn.execute("select stream_id from pge_events where type = 'Seen' order by position")]
    assert written == ["v1-0", "v1-1", "v2-2"], (
        "the build of version 2 emitted nothing; version 2 emits after its switch"
    )


def test_review_6_an_application_cannot_append_what_passes_for_an_emitted_event_nor_a_link_past_bigint(
    store: EventStore, dsn: str
) -> None:
    deploy(store, shipping(), lifecycles={"shipping": "async"}, emits=["shipping"])
    with psycopg.connect(dsn, autocommit=True) as admin:
        login_roles(admin, "emits_app")
        admin.execute("grant usage on schema public to emits_app")
        admin.execute("grant execute on function pge_append(jsonb) to emits_app")
    forged = [
        {"id": "shipment-x", "type": "shipment", "metadata": {"$projection": "shipping"}, "data": {"$type": "T"}},
        {"id": "order-1", "type": "order", "metadata": {"$emitDepth": 16}, "data": {"$type": "Placed", "n": 1}},
        [
            {"id": "a-1", "type": "a", "data": {"$type": "T"}},
            {"id": "b-1", "type": "b", "metadata": {"$emitDepth": 1}, "data": {"$type": "T"}},
        ],
        {"id": "links", "type": "links", "data": {"$type": "$>", "link": "99999999999999999999@order-1"}},
    ]
    with psycopg.connect(as_role(dsn, "emits_app"), autocommit=True) as app:
        for message in forged:
            with pytest.raises(psycopg.Error) as caught:
                app.execute("select pge_append(%s)", (Jsonb(message),))
            assert caught.value.sqlstate == "JP400", message
    assert store.streams(["shipment-x", "order-1", "a-1", "links"]) == {}


# KurrentDB's results: Result events, written by the daemon where the projection may write events.
XBOX = """
fromAll()
.when({
    $init: function(){ return { count: 0 } },
    ItemAdded: function(s,e){ if(e.body.Description.indexOf("Xbox One S") >= 0){ s.count += 1; } }
})
"""
CARTS = [
    ("shoppingCart-b989fe21-9469-4017-8d71-9820b8dd1164", "Xbox One S 1TB (Console)"),
    ("shoppingCart-b989fe21-9469-4017-8d71-9820b8dd1164", "Gears of War 4"),
    ("shoppingCart-b989fe21-9469-4017-8d71-9820b8dd1165", "Xbox One S 500GB (Console)"),
    ("shoppingCart-b989fe21-9469-4017-8d71-9820b8dd1165", "Xbox One Elite Controller"),
    ("shoppingCart-b989fe21-9469-4017-8d71-9820b8dd1166", "Xbox One S Minecraft Edition (Console)"),
    ("shoppingCart-b989fe21-9469-4017-8d71-9820b8dd1166", "Fifa 2016 (Xbox)"),
    ("shoppingCart-b989fe21-9469-4017-8d71-9820b8dd1167", "Xbox One Elite (Console)"),
]


def add_items(store: EventStore) -> None:
    for cart, description in CARTS:
        store.append({"id": cart, "type": "shoppingCart", "data": {"$type": "ItemAdded", "Description": description}})


def results(store: EventStore, stream: str) -> list[tuple[str, dict]]:
    return [(e.type, e.data) for e in store.fetch_stream(stream).events]


@pytest.mark.parametrize("when", ["built", "followed"])
def test_kurrentdbs_documented_results_are_result_events_in_its_result_streams(
    store: EventStore, dsn: str, when: str
) -> None:
    """KurrentDB's tutorial with .outputState() (its result stream read newest first: count 3, 2, 1), the same
    with options({resultStreamName: "xboxes"}), and custom.md's transformBy; whether built or followed."""
    files = [
        {"file": "xbox-one-s-counter.js", "source": XBOX + ".outputState()"},
        {"file": "renamed.js", "source": 'options({ resultStreamName: "xboxes" });' + XBOX + ".outputState()"},
        {"file": "totals.js", "source": XBOX + ".transformBy(function (state) { return {Total: state.count} })"},
    ]
    names = ["xbox_one_s_counter", "renamed", "totals"]
    if when == "built":
        add_items(store)
    deploy(store, files, lifecycles=dict.fromkeys(names, "async"), emits=names)
    Daemon(dsn, page_size=2).run(until_caught_up=True)
    if when == "followed":
        add_items(store)
        Daemon(dsn, page_size=2).run(until_caught_up=True)
    counts = [("Result", {"count": n}) for n in (1, 2, 3)]
    assert results(store, "projections-xbox_one_s_counter-result") == counts
    assert results(store, "xboxes") == counts
    assert results(store, "projections-totals-result") == [("Result", {"Total": n}) for n in (1, 2, 3)]
    assert fetch_view(store, "xbox_one_s_counter") == {"xbox_one_s_counter": {"count": 3}}
    rebuild(store, "xbox_one_s_counter")
    Daemon(dsn).run(until_caught_up=True)
    assert results(store, "projections-xbox_one_s_counter-result") == counts, "a rebuild writes no result twice"


# Review 7 (a blind attack on results, shared state and $created): each break, kept.


def test_review_7_a_projection_never_reads_results_and_one_whose_results_are_dates_stops_the_daemon_for_no_one(
    store: EventStore, dsn: str
) -> None:
    files = [
        {"file": "fa.js", "source": "fromAll().when({ $init: function () { return { n: 0 }; }, "
         "$any: function (s) { s.n += 1; } }).outputState();"},
        {"file": "dates.js", "source": "fromCategory('cart').foreachStream().when({ Add: function () { return new Date(0); } })"
         ".transformBy(function (s) { return new Date(0); }).outputState();"},
        {"file": "good.js", "source": "fromAll().when({ $any: function (s) { s.n = (s.n || 0) + 1; } });"},
    ]  # fmt: skip
    names = ["fa", "dates", "good"]
    deploy(store, files, lifecycles=dict.fromkeys(names, "async"), emits=["fa", "dates"])
    store.append(stream_id="cart-1", type="cart", events=[{"$type": "Add"}])
    Daemon(dsn).run(until_caught_up=True)  # (before: a raw DatabaseError ended it, and every projection with it)
    Daemon(dsn).run(until_caught_up=True)  # (before: fa counted its own results, up to an emit chain of 16)
    assert fetch_view(store, "fa") == {"fa": {"n": 1}}
    assert results(store, "projections-fa-result") == [("Result", {"n": 1})]
    assert results(store, "projections-dates-cart-1-result") == [("Result", {"value": "1970-01-01T00:00:00.000Z"})]
    assert fetch_view(store, "good") == {"good": {"n": 1}}, "built and following: no KurrentDB projection reads results"
