"""What bounds the follow lag's tail: the lag with 8 writers, with 2, and with 8 and the daemon at nice -10.

An experiment for docs/benchmarks.md (issue 29's closing note), not a row of ``make bench``: each variant takes
``--turns`` turns of 4 s in the scenario-7 setup (a ``jsproj daemon`` following, the probe appending every 50 ms
and reading its document every 1 ms), the variants taking turns, and prints each variant's lag p50 and p99 over
every probe with the load average. If the tail is the daemon waiting for a core, it shrinks with fewer writers
and with the daemon ahead of them in the scheduler's queue. Run as root for the nice -10 variant.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess

import psycopg

import scenario_follow as sf
from harness import load_average, percentiles, process_tree
from jsproj.tools.postgres_cluster import temporary_cluster


def renice(pid: int, niceness: int) -> None:
    for each in process_tree(pid):
        subprocess.run(["renice", "-n", str(niceness), "-p", str(each)], capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    cluster = temporary_cluster(prefix="jsproj-lag-", shared_buffers="512MB", max_connections="60")
    cluster.init(durable=True)
    cluster.start()

    def new_database(name: str) -> str:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute(f"drop database if exists {name}")
            conn.execute(f"create database {name}")
        return cluster.dsn.replace("dbname=jsproj", f"dbname={name}")

    variants = {"8 writers": (8, 0), "2 writers": (2, 0), "8 writers, daemon at nice -10": (8, -10)}
    lags: dict[str, list[float]] = {name: [] for name in variants}
    loads: dict[str, list[float]] = {name: [] for name in variants}
    try:
        with multiprocessing.get_context("spawn").Pool(8) as pool:
            sf.start_writers(pool)
            side = sf.Side(sf.new_store(new_database, "lag_tail"))
            with sf.DaemonProcess(side.dsn) as daemon:
                side.daemon = daemon
                for _ in range(args.turns):
                    for name, (writers, niceness) in variants.items():
                        renice(daemon.proc.pid, niceness)
                        sf.WRITERS = writers
                        loads[name].append(load_average())
                        before = len(side.lags)
                        sf.write_turn(pool, side, args.seconds, poll=True)
                        lags[name] += side.lags[before:]
    finally:
        cluster.destroy()
    for name in variants:
        got = percentiles(lags[name], 1000)
        print(
            f"{name}: {len(lags[name])} probes, lag p50 {got['p50']:.1f} ms, p99 {got['p99']:.1f} ms,"
            f" load {min(loads[name]):.1f}-{max(loads[name]):.1f}"
        )


if __name__ == "__main__":
    main()
