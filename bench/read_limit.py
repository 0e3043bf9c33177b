"""What bounds the rebuild: reading the log's record lines with nothing else, beside the daemon's rebuild.

An experiment for docs/benchmarks.md (issue 29's closing note), not a row of ``make bench``. On scenario 7's
store (1,000,000 events; ``--streams`` streams; the stream projection and aggregate of scenario 4), taking turns
``--rounds`` times on fresh copies of it:

  * ``read``: every page of record lines the build reads (``jsproj.store.log.read_lines``, the daemon's page
    size), one after the other on one connection, nothing done with them: PostgreSQL building the lines and
    psycopg receiving them -- the physical limit of a build that reads this way on this machine;
  * ``rebuild``: the daemon's rebuild in this process (scenario 7's ``daemon_seconds``).

Prints events/s of each (median, min-max) with the load average, and the rebuild's share of the read's rate.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg

import scenario_async as sa
from harness import bench_cluster, clone_database, drop_database, load_average
from jsproj.follow.daemon import DEFAULT_PAGE_SIZE
from jsproj.store import log as lines
from jsproj.store.log import read_lines

EVENTS = 1_000_000
START = ("0", 0)


def read_all(dsn: str) -> tuple[float, int]:
    """Seconds to read every page of record lines after the start, and the events read."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        lines.prepare(conn)
        began, after, events = time.perf_counter(), START, 0
        while (page := read_lines(conn, after, DEFAULT_PAGE_SIZE)) is not None:
            events += page.count
            after = page.last
        return time.perf_counter() - began, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=10_000)
    args = parser.parse_args()
    cluster = bench_cluster("jsproj-read-")
    rates: dict[str, list[float]] = {"read": [], "rebuild": []}
    loads = []
    try:
        template = f"read_limit_{args.streams}"
        sa.fresh_database(cluster, template, EVENTS, args.streams)
        for _ in range(args.rounds):
            loads.append(load_average())
            dsn = clone_database(cluster.dsn, template, "read_limit_copy")
            seconds, events = read_all(dsn)
            assert events == EVENTS, f"read {events} events"
            rates["read"].append(events / seconds)
            rates["rebuild"].append(EVENTS / sa.daemon_seconds(dsn))
            drop_database(cluster.dsn, "read_limit_copy")
    finally:
        cluster.destroy()
    for name, got in rates.items():
        print(f"{name}: {statistics.median(got):,.0f} ev/s ({min(got):,.0f}-{max(got):,.0f})")
    shares = [rebuild / read for rebuild, read in zip(rates["rebuild"], rates["read"], strict=True)]
    print(f"rebuild / read: {statistics.median(shares):.2f}x ({min(shares):.2f}-{max(shares):.2f}),"
          f" {args.streams:,} streams, load {min(loads):.1f}-{max(loads):.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
