"""One daemon serving many stores (a fleet) against a real PostgreSQL: every store caught up, fairly, within its
bound on connections; stores added and dropped while it runs; metrics by store; the CLI."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from pathlib import Path

import psycopg
import pytest

from clihelp import jsproj
from jsproj.follow.daemon import Daemon, Shared
from jsproj.follow.daemon.hooks import DaemonHooks
from jsproj.follow.daemon.pages import Applied
from jsproj.follow.fleet import Catalog, Fleet, StoreKey
from jsproj.follow.fleet.metrics import FleetMetrics
from jsproj.projections.deploy import deploy
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore

from projections import sources
from waiting import running, wait_until

COUNT = """
projections.aggregate('Count').by({
  $any: function (s, e) { s.n = (s.n || 0) + 1; s.sum = (s.sum || 0) + e.amount; }
});
"""


def make_store(dsn: str, schema: str, events: int) -> None:
    """A store in ``schema`` with async aggregate Count and ``events`` events."""
    with EventStore(dsn, schema=schema, max_size=1) as store:
        store.migrate()
        deploy(store, sources(Count=COUNT), lifecycles={"Count": "async"})
        add(store, 0, events)


def add(store: EventStore, start: int, end: int) -> None:
    store.append_all([{"id": f"s-{n % 3}", "type": "S", "data": {"$type": "Added", "amount": n}}
                      for n in range(start, end)])  # fmt: skip


def counted(dsn: str, schema: str) -> dict | None:
    with EventStore(dsn, schema=schema, max_size=1) as store:
        return fetch_view(store, "Count").get("Count")


def want(events: int) -> dict:
    return {"n": events, "sum": sum(range(events))}


class Pages(DaemonHooks):
    """Which store each committed page was of, in order (shared by every store's daemon)."""

    def __init__(self, label: str, seen: list[str]) -> None:
        self.label, self.seen = label, seen

    def page_committed(self, applied: Applied) -> None:
        self.seen.append(self.label)

    def built(self, name: str, events: int) -> None:
        self.seen.append(self.label)


def fleet_of(dsn: str, schemas: list[str] | None = None, **options: object) -> tuple[Fleet, list[str]]:
    seen: list[str] = []

    def make(key: StoreKey, shared: Shared) -> Daemon:
        return Daemon(key.dsn, schema=key.schema, page_size=100, poll_interval=0.05, hooks=Pages(key.schema, seen),
                      shared=shared)  # fmt: skip

    options = {"poll_interval": 0.05, "discover_every": 0.1, **options}
    return Fleet([Catalog(dsn, schemas)], make, **options), seen  # type: ignore[arg-type]


def connections(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select count(*) from pg_stat_activity where application_name like 'jsproj daemon %'")
        return row.fetchone()[0]


def test_a_fleet_catches_up_every_store_holding_at_most_its_bound_of_them_at_once(dsn: str) -> None:
    sizes = {f"t{n}": 50 * (n + 1) for n in range(5)}
    for schema, events in sizes.items():
        make_store(dsn, schema, events)
    fleet, seen = fleet_of(dsn, max_attached=2)
    most = [0]

    def watch() -> None:
        while not done.is_set():
            most[0] = max(most[0], sum(1 for s in list(fleet.slots.values()) if s.attached))
            done.wait(0.005)

    done = threading.Event()
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert fleet.run(until_caught_up=True) is True
    finally:
        done.set()
        watcher.join()
    assert {schema: counted(dsn, schema) for schema in sizes} == {s: want(n) for s, n in sizes.items()}
    assert set(seen) == set(sizes)
    assert 1 <= most[0] <= 2
    assert connections(dsn) == 0  # every store given back


def test_a_store_with_a_backlog_does_not_hold_back_the_others(dsn: str) -> None:
    for schema in ("big", "small0", "small1", "small2"):
        make_store(dsn, schema, 0)
    assert fleet_of(dsn)[0].run(until_caught_up=True) is True  # built (empty): what follows goes by pages
    with EventStore(dsn, schema="big", max_size=1) as store:
        add(store, 0, 3000)  # 30 pages of 100 at least
    for n in range(3):
        with EventStore(dsn, schema=f"small{n}", max_size=1) as store:
            add(store, 0, 20)
    fleet, seen = fleet_of(dsn, max_attached=4, workers=1)
    assert fleet.run(until_caught_up=True) is True
    last_big = max(i for i, label in enumerate(seen) if label == "big")
    firsts = [seen.index(f"small{n}") for n in range(3)]
    assert all(first < last_big for first in firsts), seen  # served while the big one still had pages to go
    assert counted(dsn, "big") == want(3000)


def test_stores_added_and_dropped_while_it_runs_are_served_and_let_go(dsn: str) -> None:
    make_store(dsn, "first", 10)
    fleet, _ = fleet_of(dsn, max_attached=4)
    with running(fleet):
        wait_until(lambda: counted(dsn, "first") == want(10))
        make_store(dsn, "added", 25)  # a tenant signs up
        wait_until(lambda: counted(dsn, "added") == want(25))
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("drop schema first cascade")  # a tenant leaves
        wait_until(lambda: all(key.schema != "first" for key in list(fleet.slots)))
        with EventStore(dsn, schema="added", max_size=1) as store:
            store.append({"id": "s-0", "type": "S", "data": {"$type": "Added", "amount": 25}})
        wait_until(lambda: counted(dsn, "added") == want(26))  # the others are still served


def test_a_fleet_names_its_stores_in_metrics_and_health(dsn: str) -> None:
    for schema in ("alpha", "beta"):
        make_store(dsn, schema, 30)
    metrics = FleetMetrics()

    def make(key: StoreKey, shared: Shared) -> Daemon:
        return Daemon(key.dsn, schema=key.schema, poll_interval=0.05, hooks=metrics.hooks_for(key), shared=shared)

    fleet = Fleet([Catalog(dsn)], make, poll_interval=0.05)
    with running(fleet), metrics.serve(fleet) as server:
        wait_until(lambda: counted(dsn, "alpha") == want(30) and counted(dsn, "beta") == want(30))
        text = urllib.request.urlopen(f"{server.url}/metrics", timeout=5).read().decode()  # noqa: S310 -- loopback
        database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        for schema in ("alpha", "beta"):
            line = rf'jsproj_projection_events_applied_total{{projection="Count",store="{database}.{schema}"}} 30.0'
            assert re.search(line, text), text
        assert 'jsproj_fleet_stores{state="attached"}' in text
        health = urllib.request.urlopen(f"{server.url}/healthz", timeout=5).read().decode()  # noqa: S310 -- loopback
        assert health.startswith("ok:")


def test_the_daemon_serves_the_stores_it_is_given_and_refuses_one_that_is_not(dsn: str) -> None:
    for schema in ("one", "two", "three"):
        make_store(dsn, schema, 15)
    done = jsproj("daemon", "--dsn", dsn, "--store", "one", "--store", "two", "--until-caught-up",
                  "--poll-interval", "0.05")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert counted(dsn, "one") == counted(dsn, "two") == want(15)
    assert counted(dsn, "three") is None  # not given: not served
    assert jsproj("daemon", "--dsn", dsn, "--all-stores", "--until-caught-up").returncode == 0
    assert counted(dsn, "three") == want(15)
    missing = jsproj("daemon", "--dsn", dsn, "--store", "nowhere", "--until-caught-up")
    assert missing.returncode != 0 and "no jsproj store in schema nowhere" in missing.stderr
    both = jsproj("daemon", "--dsn", dsn, "--store", "one", "--all-stores")
    assert both.returncode == 2 and "give one of them" in both.stderr


@pytest.mark.parametrize("flag", ["--max-attached", "--workers"])
def test_the_fleets_bounds_must_be_positive(dsn: str, flag: str) -> None:
    done = jsproj("daemon", "--dsn", dsn, "--all-stores", flag, "0")
    assert done.returncode == 2 and flag in done.stderr


def test_one_daemon_serves_the_stores_of_several_databases(dsn: str, databases) -> None:
    other = databases()
    make_store(dsn, "here", 12)
    make_store(other, "there", 7)
    done = jsproj("daemon", "--dsn", dsn, "--all-stores", "--database", other, "--until-caught-up")
    assert done.returncode == 0, done.stderr
    assert counted(dsn, "here") == want(12) and counted(other, "there") == want(7)
    alone = jsproj("daemon", "--dsn", dsn, "--database", other)
    assert alone.returncode == 2 and "give --store or --all-stores too" in alone.stderr


def test_a_store_says_it_has_work_only_when_a_gap_safe_read_would_give_its_daemon_some(dsn: str) -> None:
    make_store(dsn, "s", 3)
    catalog = Catalog(dsn)
    try:
        assert catalog.with_work(["s"])[0] == {"s"}  # a build to do
        assert fleet_of(dsn)[0].run(until_caught_up=True) is True
        assert catalog.with_work(["s"])[0] == set()
        with EventStore(dsn, schema="s", max_size=1) as store:
            store.archive_stream("s-0")
            with store.connection() as conn, conn.transaction():  # appended, not committed: no work yet
                conn.execute("select pge_append(%s::jsonb)",
                             ('{"id": "s-1", "type": "S", "data": {"$type": "Added", "amount": 1}}',))  # fmt: skip
                assert catalog.with_work(["s"])[0] == set()
            assert catalog.with_work(["s"])[0] == {"s"}
            assert fleet_of(dsn)[0].run(until_caught_up=True) is True
            store.unarchive_stream("s-0")
            store.append({"id": "s-0", "type": "S", "data": {"$type": "Added", "amount": 0}})
            store.archive_stream("s-0")
        assert catalog.with_work(["s"])[0] == set()  # events of an archived stream are no work
    finally:
        catalog.close()


def test_a_store_that_cannot_say_whether_it_has_work_holds_back_no_other(dsn: str) -> None:
    make_store(dsn, "broken", 1)
    make_store(dsn, "fine", 0)
    assert fleet_of(dsn)[0].run(until_caught_up=True) is True
    with psycopg.connect(dsn, autocommit=True) as conn:  # a store broken by accident (or renamed meanwhile)
        conn.execute("create or replace function broken.pge_daemon_work() returns boolean language plpgsql"
                     " as $$ begin raise exception 'broken'; end $$")  # fmt: skip
    catalog = Catalog(dsn)
    try:
        with EventStore(dsn, schema="fine", max_size=1) as store:
            add(store, 0, 4)
        busy, failed = catalog.with_work(["broken", "fine"])
        assert busy == {"fine"} and set(failed) == {"broken"} and "broken" in failed["broken"]
    finally:
        catalog.close()
    fleet, _ = fleet_of(dsn, max_attached=1, park_after=0.2)
    with running(fleet):
        with EventStore(dsn, schema="fine", max_size=1) as store:
            add(store, 4, 6)
        wait_until(lambda: counted(dsn, "fine") == want(6))


ISOLATION = Path(__file__).resolve().parents[1] / "conformance" / "isolation-shared-builtins" / "projections"


def test_stores_a_fleet_serves_in_one_v8_context_leave_nothing_for_each_other(dsn: str) -> None:
    """One attached at a time: the writer's store, then the reader's, in one worker's context (an engine each)."""
    for schema, name, file in (("a_leaky", "Writer", "A_Writer.js"), ("b_nosy", "Reader", "B_Reader.js")):
        with EventStore(dsn, schema=schema, max_size=1) as store:
            store.migrate()
            deploy(store, [{"file": file, "source": (ISOLATION / file).read_text("utf-8")}], lifecycles={name: "async"})
            store.append({"id": "s1", "type": "S", "data": {"$type": "Go", "secret": "hunter2"}})
    fleet, seen = fleet_of(dsn, ["a_leaky", "b_nosy"], max_attached=1)
    assert fleet.run(until_caught_up=True)
    assert seen == ["a_leaky", "b_nosy"]
    with EventStore(dsn, schema="a_leaky", max_size=1) as store:
        assert fetch_view(store, "Writer") == {"Writer": {"tried": 1}}
    with EventStore(dsn, schema="b_nosy", max_size=1) as store:
        reader = fetch_view(store, "Reader")["Reader"]
    assert reader["seen"] == [] and reader["frozen"] == [True, True, True]


def test_status_of_every_store_shows_what_each_has_still_to_process(dsn: str, databases) -> None:
    other = databases()
    make_store(dsn, "caught", 10)
    make_store(dsn, "behind", 25)
    make_store(other, "elsewhere", 5)
    assert jsproj("daemon", "--dsn", dsn, "--store", "caught", "--until-caught-up").returncode == 0
    shown = jsproj("status", "--dsn", dsn, "--all-stores", "--database", other, "--json")
    assert shown.returncode == 0, shown.stderr
    stores = {each["schema"]: each for each in json.loads(shown.stdout)}
    assert set(stores) >= {"caught", "behind", "elsewhere"}
    assert (stores["caught"]["behind"], stores["behind"]["behind"], stores["elsewhere"]["behind"]) == (0, 25, 5)
    assert [p["name"] for p in stores["behind"]["projections"]] == ["Count"]
    assert stores["caught"]["servedByFleet"] and stores["caught"]["error"] is None
    table = jsproj("status", "--dsn", dsn, "--all-stores")
    assert table.returncode == 0, table.stderr
    database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    assert re.search(rf"{database}\.behind\s.*\b25\b", table.stdout), table.stdout
    assert "elsewhere" not in table.stdout  # (its database was not given)
    assert jsproj("status", "--dsn", dsn, "--database", other).returncode == 2
    assert jsproj("status", "--dsn", dsn, "--all-stores", "--schema", "caught").returncode == 2
