"""The `eventsourcing` package's rows of scenarios 1 and 4, against jsproj's doing the same, taking turns.

Runs bench/eventsourcing_runner.py in its own process (a new database on
the same cluster each time), configured through the environment variables
the package reads, in turns with jsproj's measurement: the appends of
scenario 1 at the package's sizes, and the daemon rebuilding a copy of
scenario 4's store (which must have run). The package's projection runner
applies one event per transaction, so it folds a sample of the rebuild's
size (its rate does not depend on the log's length).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Callable

from psycopg.conninfo import conninfo_to_dict

import scenario_rebuild
from harness import HERE, MB, PAIRS, Row, drop_database, log, run_sampled, take_turns
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import Cluster
from scenario_store import append_batches, single_appends


def _environment(dsn: str) -> dict[str, str]:
    info = conninfo_to_dict(dsn)
    return {
        **os.environ,
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_HOST": str(info["host"]),
        "POSTGRES_PORT": str(info["port"]),
        "POSTGRES_USER": str(info["user"]),
        "POSTGRES_DBNAME": str(info["dbname"]),
        "POSTGRES_PASSWORD": "",
    }


def _runner(job: str, dsn: str, *args: str) -> tuple[dict, int]:
    argv = [sys.executable, str(HERE / "eventsourcing_runner.py"), job, *args]
    _, peak, out = run_sampled(argv, env=_environment(dsn))
    return json.loads(out), peak


def run(cluster: Cluster, new_database: Callable[[str], str], quick: bool) -> list[Row]:
    """Appends, batched and single-event: jsproj's and the package's at the same sizes, taking turns."""
    events, singles = (20_000, 400) if quick else (100_000, 800)
    log(f"eventsourcing: {events:,} events in 1,000-event saves, {singles} single saves from 1 and 8 threads,"
        f" and jsproj's appends of the same, {PAIRS} pairs")  # fmt: skip
    copies = itertools.count()

    def theirs() -> dict[str, float]:  # a database each: the runner's accounts have fixed ids
        return _runner("append", new_database(f"bench_es_append_{next(copies)}"), "--events", str(events),
                       "--single", str(singles))[0]  # fmt: skip

    with EventStore(new_database("bench_es_jsproj"), max_size=10) as store:
        store.migrate()

        def ours() -> dict[str, float]:
            return {"batched": append_batches(store, events, 1000), "single_1": single_appends(store, singles, 1),
                    "single_8": single_appends(store, singles, 8)}  # fmt: skip

        turns = take_turns({"jsproj": ours, "eventsourcing": theirs}, what="appends against eventsourcing (3 rows)")
    note = f"jsproj measured here at the package's sizes ({events:,} events batched, {singles} single)"
    return [
        Row("1 append", label, turns.pair(f"jsproj.{key}", f"eventsourcing.{key}"),
            "eventsourcing 9.5 (its PostgreSQL recorder)", "ev/s", note=note)
        for key, label in (("batched", "batched appends, 1,000-event messages"),
                           ("single_1", "single-event appends, 1 writer"),
                           ("single_8", "single-event appends, 8 writers"))
    ]  # fmt: skip


def run_projection(cluster: Cluster, new_database: Callable[[str], str], quick: bool) -> list[Row]:
    """The rebuild fold by the package's ProjectionRunner, against jsproj's daemon rebuilding scenario 4's store
    (a copy of it each pair), taking turns."""
    events, streams = (5_000, 1_000) if quick else (100_000, 1_000)  # its rate does not depend on the log's length
    ours_events, ours_streams, page_size = scenario_rebuild.sizes(quick)
    builds = scenario_rebuild.Builds(cluster, ours_events, ours_streams, page_size)
    copies = itertools.count()

    def ours() -> dict[str, float]:
        built = builds.daemon()
        drop_database(cluster.dsn, builds.current)
        return built

    def theirs() -> dict[str, float]:
        result, _ = _runner("project", new_database(f"bench_es_project_{next(copies)}"), "--events", str(events),
                            "--streams", str(streams))  # fmt: skip
        return {"rate": result["events"] / result["seconds"], "rss": result["peakRss"]}

    log(f"eventsourcing: ProjectionRunner over {events:,} events in {streams:,} aggregates, and the jsproj daemon"
        f" rebuilding {ours_events:,}, {PAIRS} pairs")  # fmt: skip
    turns = take_turns({"jsproj": ours, "eventsourcing": theirs}, what="the rebuild against eventsourcing (2 rows)")
    return [
        Row("4 rebuild", "rebuild events/s", turns.pair("jsproj.rate", "eventsourcing.rate"),
            f"eventsourcing 9.5 ProjectionRunner ({events:,} events)", "ev/s", (">=", 20.0),
            note=f"jsproj's daemon rebuilding scenario 4's {ours_events:,} events, in turns with the runner"),
        Row("4 rebuild", "peak RSS during the rebuild", turns.pair("jsproj.rss", "eventsourcing.rss").scaled(1 / MB),
            "eventsourcing 9.5 ProjectionRunner (its process)", "MB"),
    ]  # fmt: skip
