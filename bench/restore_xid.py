"""A check behind docs/scaling.md: a store copied logically (pg_dump, pg_restore) into a server whose transaction
counter is behind the copied events' ``tx_id``s -- what a store moved between primaries, or a Citus shard moved
between nodes, meets.

    .venv/bin/python bench/restore_xid.py

Two throwaway clusters: on the first, 20,000 transactions burn ids, then a store gets two events; its database is
dumped and restored into the second (a new cluster, its counter in the hundreds), which appends one more event.
It prints what ``read_all`` returns there: nothing of the restored events while the counter is below their
``tx_id`` (the gap-safe condition holds them back), and the new event first, below the restored ones in the
``(tx_id, position)`` order -- which a reader whose cursor was restored past it would skip.
"""

from __future__ import annotations

import subprocess

import psycopg

import jsproj
from jsproj.tools.postgres_cluster import Cluster, temporary_cluster


def burn(cluster: Cluster, transactions: int) -> None:
    """Advance the cluster's transaction counter by ``transactions`` (each its own, committed)."""
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f"do $$ begin for i in 1..{transactions} loop perform pg_current_xact_id(); commit; end loop;"
                     " end $$")  # fmt: skip


def copy_database(source: Cluster, target: Cluster) -> None:
    dump = subprocess.run([str(source.bin_dir / "pg_dump"), "-d", source.dsn, "-Fc"], capture_output=True, check=True)
    restore = [str(target.bin_dir / "pg_restore"), "-d", target.dsn, "--no-owner"]
    # not checked: it warns about objects the new cluster has already (the public schema)
    subprocess.run(restore, input=dump.stdout, capture_output=True, check=False)


def main() -> int:
    old, new = temporary_cluster(prefix="jsproj-xid-old-"), temporary_cluster(prefix="jsproj-xid-new-")
    try:
        for cluster in (old, new):
            cluster.init(durable=False)
            cluster.start()
        burn(old, 20_000)
        with jsproj.connect(old.dsn) as store:
            store.append({"id": "before", "type": "T", "data": [{"$type": "E"}, {"$type": "E"}]})
            print(f"old server: read_all gives {len(store.read_all())} events")
        copy_database(old, new)
        with psycopg.connect(new.dsn) as conn:
            now = conn.execute("select pg_current_xact_id()::text").fetchone()[0]
            copied = conn.execute("select max(tx_id::text) from pge_events").fetchone()[0]
        print(f"new server: its transaction counter at {now}, the restored events' tx_id {copied}")
        with jsproj.connect(new.dsn) as store:
            print(f"new server: read_all gives {len(store.read_all())} events after the restore")
            store.append({"id": "after", "type": "T", "data": {"$type": "E"}})
            found = [(event.stream_id, event.position) for event in store.read_all()]
            print(f"new server: after one append there, read_all gives {found}")
    finally:
        old.destroy()
        new.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
