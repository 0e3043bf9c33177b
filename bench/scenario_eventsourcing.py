"""The `eventsourcing` package's rows of scenarios 1 and 4, against jsproj's figures from the same run.

Runs bench/eventsourcing_runner.py in its own process (its own database on
the same cluster), configured through the environment variables the package
reads. Its projection runner applies one event per transaction, so it folds
a sample of the rebuild's size (its rate does not depend on the log's length).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

from psycopg.conninfo import conninfo_to_dict

from harness import HERE, MB, Row, log, run_sampled
from jsproj.tools.postgres_cluster import Cluster


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


def _ours(rows: list[Row], scenario: str, what: str) -> float | None:
    return next((r.ours for r in rows if r.scenario == scenario and r.what.startswith(what)), None)


def run(cluster: Cluster, new_database: Callable[[str], str], rows: list[Row], quick: bool) -> list[Row]:
    """Appends: batched and single-event, against the same rows measured by scenario_store."""
    events, singles = (20_000, 400) if quick else (100_000, 800)
    log(f"eventsourcing: {events:,} events in 1,000-event saves, {singles} single saves from 1 and 8 threads")
    rates, _ = _runner("append", new_database("bench_es_append"), "--events", str(events), "--single", str(singles))
    found = []
    for key, what, label in (
        ("batched", "batched appends", "batched appends, 1,000-event messages"),
        ("single_1", "single-event appends, 1 writer", "single-event appends, 1 writer"),
        ("single_8", "single-event appends, 8 writers", "single-event appends, 8 writers"),
    ):
        ours = _ours(rows, "1 append", what)
        if ours is not None:
            found.append(Row("1 append", label, ours, "eventsourcing 9.5 (its PostgreSQL recorder)", rates[key],
                             "ev/s"))  # fmt: skip
    return found


def run_projection(cluster: Cluster, new_database: Callable[[str], str], rows: list[Row], quick: bool) -> list[Row]:
    """The rebuild fold by the package's ProjectionRunner, against jsproj's rebuild rate."""
    events, streams = (10_000, 1_000) if quick else (100_000, 1_000)
    log(f"eventsourcing: ProjectionRunner over {events:,} events in {streams:,} aggregates")
    result, _ = _runner("project", new_database("bench_es_project"), "--events", str(events),
                           "--streams", str(streams))  # fmt: skip
    ours = _ours(rows, "4 rebuild", "rebuild a stream projection")
    if ours is None:
        return []
    return [
        Row("4 rebuild", "rebuild events/s", ours, f"eventsourcing 9.5 ProjectionRunner ({events:,} events)",
            result["events"] / result["seconds"], "ev/s", (">=", 20.0)),
        Row("4 rebuild", "peak RSS during the rebuild", _ours(rows, "4 rebuild", "peak RSS during") or 0,
            "eventsourcing 9.5 ProjectionRunner (its process)", result["peakRss"] / MB, "MB"),
    ]  # fmt: skip
