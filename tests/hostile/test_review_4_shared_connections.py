"""Review 4: a fleet keeps each database's connections for the next store, "emptied of all the store before set or
held (its advisory locks, LISTEN, settings, temporary tables)" (docs/daemon.md, "Many stores, one daemon"). Once a
store is parked, what its daemon held must be gone from every connection the fleet keeps: no advisory lock (a lone
daemon of that store could not take its projections), nothing of it in the sessions' state."""

from __future__ import annotations

import psycopg
import pytest

from jsproj.follow.daemon import Daemon, Shared
from jsproj.follow.fleet import Catalog, Fleet, StoreKey
from jsproj.projections.deploy import deploy
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore

from waiting import running, wait_until

pytestmark = pytest.mark.slow

COUNT = "projections.aggregate('Count').by({ $any: function (s, e) { s.n = (s.n || 0) + 1; s.tag = e.tag; } });"
BROKEN = "projections.aggregate('Count').by({ $any: function (s, e) { if (e.tag === 'a_first') throw new Error('no'); s.n = 1; } });"


def make(dsn: str, schema: str, source: str) -> None:
    with EventStore(dsn, schema=schema, max_size=1) as store:
        store.migrate()
        deploy(store, [{"file": "Count.js", "source": source}], lifecycles={"Count": "async"})
        store.append({"id": "s1", "type": "S", "data": {"$type": "Added", "tag": schema}})


def count(dsn: str, schema: str) -> dict | None:
    with EventStore(dsn, schema=schema, max_size=1) as store:
        return fetch_view(store, "Count").get("Count")


def fleet_sessions(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "select a.pid, a.state, l.locktype, l.objid, l.mode from pg_stat_activity a"
            " join pg_locks l on l.pid = a.pid and l.locktype = 'advisory'"
            " where a.application_name like 'jsproj daemon %%'"
        ).fetchall()


def test_a_parked_store_leaves_no_advisory_lock_on_the_connections_the_fleet_keeps(dsn: str) -> None:
    make(dsn, "a_first", BROKEN)  # stopped on its event: its daemon's error path ran on the shared connections too
    make(dsn, "b_second", COUNT)

    def daemon(key: StoreKey, shared: Shared) -> Daemon:
        return Daemon(key.dsn, schema=key.schema, poll_interval=0.05, shared=shared)

    fleet = Fleet([Catalog(dsn, ["a_first", "b_second"])], daemon, poll_interval=0.05, discover_every=0.1,
                  max_attached=1, park_after=0.2)  # fmt: skip
    with running(fleet):
        wait_until(lambda: count(dsn, "b_second") == {"n": 1, "tag": "b_second"})
        wait_until(lambda: not any(slot.attached for slot in list(fleet.slots.values())))
        held = fleet_sessions(dsn)
        # a lone daemon of either store takes its projections while the fleet keeps its connections
        with EventStore(dsn, schema="b_second", max_size=1) as store:
            store.append({"id": "s1", "type": "S", "data": {"$type": "Added", "tag": "b_second"}})
        wait_until(lambda: count(dsn, "b_second") == {"n": 2, "tag": "b_second"})
    assert held == []
