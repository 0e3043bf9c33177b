"""Daemon page size: events/s and peak memory, catching up and rebuilding.

One throwaway PostgreSQL cluster and one event log; for each page size,
`jsproj daemon --until-caught-up` in its own process:

  * catching up: the projections are running and every event is new to
    them (the incremental path: documents read, applied, written with the
    progress in one transaction per projection and page);
  * rebuilding: the projections are built from scratch (one pass, documents
    folded in memory).

The default page size (jsproj.follow.daemon.DEFAULT_PAGE_SIZE) comes from this. Not a test.

    python bench/page_size_bench.py [--events 200000] [--streams 2000] [--sizes 100,500,1000,2000,5000]
"""

from __future__ import annotations

import argparse
import sys

import psycopg

from jsproj.follow.daemon import Daemon
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import temporary_cluster
from scenario_rebuild import PROJECTIONS, daemon_build, load_events


def reset(dsn: str, status: str) -> None:
    """Forget the projections' documents and progress: 'running' to catch up, 'build' to rebuild."""
    with psycopg.connect(dsn) as conn:
        conn.execute("truncate pge_projections_balance, pge_aggregates, pge_dead_letters")
        conn.execute("update pge_projection_progress set status = %s, last_tx = '0', last_position = 0", (status,))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--streams", type=int, default=2_000)
    parser.add_argument("--sizes", default="100,500,1000,2000,5000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    cluster = temporary_cluster(prefix="jsproj-pg-bench-", shared_buffers="512MB")
    cluster.init(durable=True)
    cluster.start()
    rows = []
    try:
        dsn = cluster.dsn
        with EventStore(dsn, max_size=1) as store:
            store.migrate()
            deploy(store, [{"file": "Bank.js", "source": PROJECTIONS}])
        Daemon(dsn).run(until_caught_up=True)  # built from nothing: running from the start
        load_events(dsn, args.events, args.streams)
        for size in sizes:
            reset(dsn, "running")
            catch_up, catch_up_rss, _ = daemon_build(dsn, size)
            reset(dsn, "build")
            rebuild, rebuild_rss, _ = daemon_build(dsn, size)
            rows.append((size, catch_up, catch_up_rss, rebuild, rebuild_rss))
    finally:
        cluster.destroy()
    mb = 1024 * 1024
    print(f"# daemon page size: {args.events:,} events in {args.streams:,} streams, "
          "a stream projection and an aggregate, durable PostgreSQL")  # fmt: skip
    print(f"{'page size':>9}  {'catch-up ev/s':>13}  {'peak RSS':>8}  {'rebuild ev/s':>12}  {'peak RSS':>8}")
    for size, catch_up, catch_up_rss, rebuild, rebuild_rss in rows:
        print(f"{size:>9}  {args.events / catch_up:>13,.0f}  {catch_up_rss / mb:>6,.0f}MB"
              f"  {args.events / rebuild:>12,.0f}  {rebuild_rss / mb:>6,.0f}MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
