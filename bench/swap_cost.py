"""A build's swap: what keeping the live table's grants and user indexes costs, against the alternatives.

One throwaway PostgreSQL cluster; an async view projection whose document
table holds ``--docs`` documents (~150 bytes each), with a declared field's
index, one index and one GRANT of the user's. A build's staging table of the
same documents is made and indexed before each swap (as the daemon does,
outside the swap's transaction: jsproj.follow.daemon.build), then one transaction is
timed per way, ``--rounds`` times each (the median):

  * rename, keeping: ``pge_swap_build`` (grants and comment copied, the user's
    index staged beforehand and renamed): what the daemon does now;
  * rename, losing them: the swap before issue 18 (drop the live table, rename
    the staging one and its indexes): the baseline of that cost;
  * truncate and load: the live table emptied and refilled from the staging
    one in the swap's transaction (its grants and indexes stay, but every
    row and index entry is written while readers wait on the lock).

Not a test; ``python bench/swap_cost.py [--docs 100000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg

from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import temporary_cluster

VIEW = """projections.projectEvent('Joined').named('Member').by(function (e) {
  return { id: e.who, location: e.location, size: e.size };
}).async().index('location');"""
DOCUMENT = """jsonb_build_object('id', 'm' || g, 'location', 'town ' || (g %% 500), 'size', g %% 7,
                                  'note', repeat('x', 60))"""


def fill(conn: psycopg.Connection, table: str, docs: int) -> None:
    conn.execute(f"insert into {table} (id, data) select 'm' || g, {DOCUMENT} from generate_series(1, %s) g", (docs,))


def stage(conn: psycopg.Connection, docs: int, *, user_indexes: bool) -> None:
    """The staging table a build leaves before its swap: rows, primary key, declared and (optionally) user indexes."""
    conn.execute("drop table if exists pge_build_member")
    conn.execute("create table pge_build_member (id text not null, data jsonb not null, "
                 "updated_at timestamptz not null default now()) with (fillfactor = 70)")  # fmt: skip
    fill(conn, "pge_build_member", docs)
    conn.execute("alter table pge_build_member add constraint pge_build_member_pkey primary key (id)")
    conn.execute("select pge_sync_indexes('Member', true)")
    if user_indexes:
        conn.execute("select pge_stage_user_indexes('Member')")
    conn.commit()


def dress(conn: psycopg.Connection) -> None:
    """The user's index and grant on the live table (again after a swap that loses them)."""
    conn.execute("create index if not exists member_size on pge_projections_member ((data -> 'size'))")
    conn.execute("grant select on pge_projections_member to bench_reader")
    conn.commit()


def swap_keeping(conn: psycopg.Connection) -> None:
    conn.execute("select pge_swap_build('Member')")


def swap_losing(conn: psycopg.Connection) -> None:
    conn.execute("drop table pge_projections_member")
    conn.execute("alter table pge_build_member rename to pge_projections_member")
    conn.execute("alter index pge_build_member_pkey rename to pge_projections_member_pkey")
    conn.execute("select pge_adopt_indexes('Member')")


def truncate_and_load(conn: psycopg.Connection) -> None:
    conn.execute("truncate pge_projections_member")
    conn.execute("insert into pge_projections_member (id, data, updated_at) select id, data, updated_at "
                 "from pge_build_member")  # fmt: skip
    conn.execute("drop table pge_build_member")


def timed(conn: psycopg.Connection, docs: int, swap, user_indexes: bool) -> float:
    dress(conn)
    stage(conn, docs, user_indexes=user_indexes)
    started = time.perf_counter()
    with conn.transaction():
        swap(conn)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cluster = temporary_cluster(prefix="jsproj-swap-", shared_buffers="256MB")
    cluster.init(durable=True)
    cluster.start()
    try:
        with EventStore(cluster.dsn) as store:
            deploy(store, [{"file": "Member.js", "source": VIEW}])
        with psycopg.connect(cluster.dsn) as conn:
            conn.execute("create role bench_reader")
            fill(conn, "pge_projections_member", args.docs)
            conn.commit()
            ways = {"rename, keeping (pge_swap_build)": (swap_keeping, True),
                    "rename, losing (before)": (swap_losing, False),
                    "truncate and load": (truncate_and_load, False)}  # fmt: skip
            medians = {}
            for what, (swap, user_indexes) in ways.items():
                times = [timed(conn, args.docs, swap, user_indexes) for _ in range(args.rounds)]
                medians[what] = statistics.median(times)
            kept = conn.execute("select has_table_privilege('bench_reader', 'pge_projections_member', 'select')")
            assert kept.fetchone() == (True,)
    finally:
        cluster.destroy()
    baseline = medians["rename, losing (before)"]
    print(f"swap of {args.docs:,} documents, median of {args.rounds}:")
    for what, seconds in medians.items():
        print(f"  {what:36} {seconds * 1000:9.2f} ms  {seconds / baseline:7.2f}x the rename before")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
