"""What the check of emitted-event marks costs an application's append (issue 32: ``pge_append`` refuses
``$projection``/``$emitDepth`` metadata, sql/functions/emits.sql).

One throwaway cluster; ``pge_append`` as deployed, against the same function with the check taken out (the
baseline: what it was before), in turns, ``--rounds`` times each; appends of one small event, each its own
transaction (an application's append) and all in one transaction (a batch loop). Medians and their ratios.

    python bench/append_emit_check.py [--appends 2000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from typing import Any

import psycopg

from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import temporary_cluster

MESSAGE = '{"id": "s-%d", "type": "s", "data": [{"$type": "T", "n": 1}], "metadata": {"a": 1}}'
CHECK = re.compile(r"perform \S*pge_refuse_emit_metadata\(message\);")


def appends(conn: psycopg.Connection[Any], first: int, count: int, one_transaction: bool) -> float:
    started = time.perf_counter()
    if one_transaction:
        with conn.transaction():
            for n in range(first, first + count):
                conn.execute("select pge_append(%s::jsonb)", (MESSAGE % (n % 200),))
    else:
        for n in range(first, first + count):
            conn.execute("select pge_append(%s::jsonb)", (MESSAGE % (n % 200),))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    cluster = temporary_cluster()
    cluster.init(durable=False)
    cluster.start()
    try:
        with EventStore(cluster.dsn) as store:
            store.migrate()
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            deployed = conn.execute("select pg_get_functiondef('pge_append(jsonb)'::regprocedure)").fetchone()[0]
            baseline = CHECK.sub("", deployed)
            assert baseline != deployed, "pge_append no longer performs the check: update this bench"
            for one_transaction in (False, True):
                times: dict[str, list[float]] = {"check": [], "baseline": []}
                first = 0
                for _ in range(args.rounds):
                    for name, body in (("check", deployed), ("baseline", baseline)):
                        conn.execute(body)
                        times[name].append(appends(conn, first, args.appends, one_transaction))
                        first += args.appends
                conn.execute(deployed)
                check, base = statistics.median(times["check"]), statistics.median(times["baseline"])
                how = "all in one transaction" if one_transaction else "a transaction each"
                print(f"{args.appends} appends, {how}: with the check {check:.3f} s, without {base:.3f} s: "
                      f"{check / base:.3f}x")  # fmt: skip
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
