"""Upcasting benchmark: what upcasters cost a rebuild (issue 30: at least 0.8x of a rebuild without them).

The same accounts as the rebuild scenario (bench/scenario_rebuild.py: a
stream projection and an aggregate, every event of both), built by
``jsproj daemon --until-caught-up`` from two logs of the same events:

  * the log written in the newest shape, the projections alone (no upcaster
    loaded: the engine's check per event is all it does);
  * the log written in its historical shapes, the projections with the
    upcasters that bring each event to the newest shape: every Deposited
    stored at version 1 (``{"amt": n}``, upcast to ``{"amount": n}``), every
    Withdrawn under its old name Debited (renamed). Every event goes through
    upcasting: the worst case for a store whose history is all old.

Both builds must write the same documents (checked). Each round builds fresh
copies (CREATE DATABASE ... TEMPLATE) of the two loaded stores, taking
turns (five rounds); the rate is events per second of the daemon's wall
time, start to exit. Part of ``python bench/run.py`` (``--only upcast``).
"""

from __future__ import annotations

import itertools
import json

import psycopg

from harness import Row, clone_database, database_dsn, drop_database, log, take_turns
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import Cluster
from scenario_rebuild import PROJECTIONS, daemon_build, sizes

SCENARIO = "9 upcasting"
#: Pairs of builds: more than the usual three, the two builds' rates being close and a build's wall time short.
PAIRS = 5
UPCASTERS = """projections.upcast('Deposited').from(1).by(function (evt) { return { amount: evt.amt }; });
projections.renameEvent('Debited').to('Withdrawn');"""
NEWEST, HISTORICAL = "upcast_newest", "upcast_historical"


def load_events(dsn: str, events: int, streams: int, *, historical: bool) -> None:
    """The rebuild scenario's log (COPY, not measured), in the newest shape or in the historical ones."""
    with psycopg.connect(dsn) as conn:
        with conn.cursor().copy("copy pge_streams (id, type) from stdin") as copy:
            for s in range(streams):
                copy.write_row((f"account-{s}", "Account"))
        with conn.cursor().copy("copy pge_events (id, stream_id, stream_type, version, type, data) from stdin") as copy:
            for n in range(events):
                withdrawn, amount = n % 5 == 4, n % 97 + 1
                if historical:
                    kind, data = ("Debited", {"amount": amount}) if withdrawn else ("Deposited", {"amt": amount})
                else:
                    kind, data = ("Withdrawn" if withdrawn else "Deposited"), {"amount": amount}
                copy.write_row((f"00000000-0000-4000-8000-{n:012d}", f"account-{n % streams}", "Account",
                                n // streams + 1, kind, json.dumps(data)))  # fmt: skip
        conn.execute("analyze pge_events")


def loaded_store(cluster: Cluster, name: str, events: int, streams: int, *, historical: bool) -> None:
    """A template database: the log loaded, the projections (and, historical, the upcasters) deployed, not built."""
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f"drop database if exists {name}")
        conn.execute(f"create database {name}")
    dsn = database_dsn(cluster.dsn, name)
    sources = [{"file": "Bank.js", "source": PROJECTIONS}]
    if historical:
        sources.append({"file": "upcasters.js", "source": UPCASTERS})
    with EventStore(dsn, max_size=1) as store:
        store.migrate()
        load_events(dsn, events, streams, historical=historical)
        deploy(store, sources)


def documents(dsn: str) -> tuple[dict[str, object], object]:
    with psycopg.connect(dsn) as conn:
        balances = dict(conn.execute("select id, data from pge_projections_balance").fetchall())
        (bank,) = conn.execute("select data from pge_aggregates where name = 'Bank'").fetchone()
    return balances, bank


class Builds:
    """One round's builds, each on a fresh copy of its template; the upcast build checked against the other."""

    def __init__(self, cluster: Cluster, events: int, page_size: int) -> None:
        self.cluster, self.events, self.page_size = cluster, events, page_size
        self.copies = itertools.count()
        self.newest: tuple[dict[str, object], object] | None = None

    def build(self, template: str) -> float:
        name = f"{template}_{next(self.copies)}"
        dsn = clone_database(self.cluster.dsn, template, name)
        seconds, _, _ = daemon_build(dsn, self.page_size)
        built = documents(dsn)
        drop_database(self.cluster.dsn, name)
        if template == NEWEST:
            self.newest = built
        else:
            assert built == self.newest, "the upcast build wrote other documents than the newest shape's"
        return self.events / seconds


def run(cluster: Cluster, quick: bool) -> list[Row]:
    events, streams, page_size = sizes(quick)
    log(f"upcasting: loading {events:,} events in {streams:,} streams, in the newest shape and in historical ones")
    loaded_store(cluster, NEWEST, events, streams, historical=False)
    loaded_store(cluster, HISTORICAL, events, streams, historical=True)
    builds = Builds(cluster, events, page_size)
    turns = take_turns(
        {"newest": lambda: builds.build(NEWEST), "historical": lambda: builds.build(HISTORICAL)},
        PAIRS,
        what="a rebuild through upcasters against one of the newest shape",
    )
    for template in (NEWEST, HISTORICAL):
        drop_database(cluster.dsn, template)
    return [
        Row(SCENARIO, f"rebuild with every event upcast (4/5 by an upcaster, 1/5 renamed), {events:,} events",
            turns.pair("historical", "newest"), "the same rebuild of a log in the newest shape, no upcaster", "ev/s",
            (">=", 0.8), note="the same documents both ways (checked); the daemon's wall time, start to exit"),
    ]  # fmt: skip
