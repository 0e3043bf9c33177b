"""jsproj's benchmarks: every headline figure next to what a user would pick instead, in one run.

    python bench/run.py            # full sizes; writes the results into docs/benchmarks.md
    python bench/run.py --quick    # the same table on smaller data (about four minutes); prints it

One throwaway PostgreSQL cluster (durable settings: fsync and
synchronous_commit on), a database per scenario. Each row is the median
ratio of at least three pairs of measurements, jsproj's and its baseline's
taking turns (bench/harness.py: take_turns), with the min and max of the
pairs' ratios and the load average before the row; a row measured above a
load average of 1.5 is warned about on stderr. Absolute figures on shared
machines drift from run to run, ratios much less. Nothing here asserts on
speed: the targets are reported, met or missed.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import harness
import scenario_async
import scenario_bridge
import scenario_emmett
import scenario_eventsourcing
import scenario_growth
import scenario_inline
import scenario_reads
import scenario_rebuild
import scenario_replicas
import scenario_store
import scenario_stores
import scenario_upcast
from harness import LOAD_WARNING, ROOT, Row, bench_cluster, log, machine, table
from jsproj.tools.postgres_cluster import Cluster

REPORT = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- results: written by bench/run.py -->", "<!-- end of results -->"
SCENARIOS = (
    "store",
    "live",
    "growth",
    "inline",
    "rebuild",
    "upcast",
    "bridge",
    "eventsourcing",
    "async",
    "emmett",
    "reads",
    "replicas",
    "stores",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, the same table, printed only")
    parser.add_argument("--only", action="append", choices=SCENARIOS, metavar="SCENARIO",
                        help="run only these scenarios: " + ", ".join(SCENARIOS))  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()
    wanted = set(args.only or SCENARIOS)
    cluster = bench_cluster("jsproj-bench-")
    new_database = functools.partial(harness.new_database, cluster.dsn)
    try:
        rows, failed = run_scenarios(wanted, cluster, new_database, args.quick)
    finally:
        cluster.destroy()
    rows.sort(key=lambda row: row.scenario)
    about = machine()
    text = report(rows, about, args.quick)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"machine": about, "rows": [r.to_dict() for r in rows], "failed": failed},
                                        indent=2))  # fmt: skip
    if failed:  # the rows above are printed (and in --json); a report missing scenarios is not written
        log(f"scenarios that failed (their tracebacks above): {', '.join(failed)}; {REPORT} not written")
        return 1
    if not args.quick and wanted == set(SCENARIOS):
        write_report(text)
        log(f"wrote {REPORT}")
    return 0


def run_scenarios(
    wanted: set[str], cluster: Cluster, new_database: Callable[[str], str], quick: bool
) -> tuple[list[Row], list[str]]:
    """The rows of the wanted scenarios, and the scenarios that failed: a failure is logged with its traceback and
    the others go on, so that one scenario does not lose a long run's rows."""
    rows: list[Row] = []
    failed: list[str] = []
    for name, step in scenario_steps(wanted, cluster, new_database, quick):
        try:
            rows += step()
        except Exception:  # noqa: BLE001 -- logged whole, and said again at the end: the other scenarios go on
            log(f"scenario {name} failed:\n{traceback.format_exc()}")
            failed.append(name)
    return rows, failed


def scenario_steps(
    wanted: set[str], cluster: Cluster, new_database: Callable[[str], str], quick: bool
) -> list[tuple[str, Callable[[], list[Row]]]]:
    """The wanted scenarios' runs, in the order their baselines need."""
    steps: list[tuple[str, Callable[[], list[Row]]]] = []
    if "store" in wanted:
        steps.append(("store", lambda: scenario_store.run(new_database("bench_store"), quick)))
    elif "live" in wanted:  # scenario 3 alone (store runs it too)
        steps.append(("live", lambda: scenario_store.run_live(new_database("bench_live"), quick)))
    if "growth" in wanted:
        steps.append(("growth", lambda: scenario_growth.run(new_database, quick)))
    if "eventsourcing" in wanted:
        steps.append(("eventsourcing", lambda: scenario_eventsourcing.run(cluster, new_database, quick)))
    if "inline" in wanted:
        steps.append(("inline", lambda: scenario_inline.run(new_database, quick)))
    if "rebuild" in wanted:
        steps.append(("rebuild", lambda: scenario_rebuild.run(cluster, quick)))
        if "eventsourcing" in wanted:
            steps.append(("eventsourcing", lambda: scenario_eventsourcing.run_projection(cluster, new_database, quick)))
    # (the others need no baseline of another scenario: in SCENARIOS' order)
    others: dict[str, Callable[[], list[Row]]] = {
        "upcast": lambda: scenario_upcast.run(cluster, quick),
        "bridge": lambda: scenario_bridge.run(quick),
        "async": lambda: scenario_async.run(cluster, new_database, quick),
        "emmett": lambda: scenario_emmett.run(new_database, quick),
        "reads": lambda: scenario_reads.run(new_database, cluster.dsn, quick),
        "replicas": lambda: scenario_replicas.run(quick),
        "stores": lambda: scenario_stores.run(new_database, quick),
    }
    steps += [(name, run) for name, run in others.items() if name in wanted]
    return steps


def report(rows: list[Row], about: dict[str, str], quick: bool) -> str:
    lines = [
        START,
        f"Measured {about['date']}{' (quick sizes)' if quick else ''} on {about['cpu']}, {about['memory']}, "
        f"{about['os']}; PostgreSQL 15 (durable settings); Python {about['python']}, Node {about['node']}, "
        f"jsproj {about['jsproj']}, mini-racer {about['mini-racer']}, psycopg {about['psycopg']}, "
        f"eventsourcing {about['eventsourcing']}.",
        "",
        f"Each ratio is the median of the pairs' ratios (jsproj's measurement and the baseline's taking turns), "
        f"min-max of them in brackets; jsproj and baseline are the medians of each side's figures; load is the "
        f"1-minute load average before the row (above {LOAD_WARNING:g}: warned about).",
        "",
        table(rows),
        "",
    ]
    notes = [f"- {row.what}: {row.note}" for row in rows if row.note]
    if notes:
        lines += ["Notes:", "", *notes, ""]
    missed = [row for row in rows if row.met is False]
    lines.append(f"Targets: {sum(1 for r in rows if r.met)} met, {len(missed)} missed"
                 + (" (" + "; ".join(r.what for r in missed) + ")." if missed else "."))  # fmt: skip
    lines.append(END)
    return "\n".join(lines)


def write_report(text: str) -> None:
    """Replace the results between the markers of docs/benchmarks.md, keeping the analysis around them."""
    current = REPORT.read_text("utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(current):
        raise SystemExit(f"{REPORT} has no results markers ({START} ... {END})")
    REPORT.write_text(pattern.sub(lambda _: text, current), "utf-8")


if __name__ == "__main__":
    sys.exit(main())
