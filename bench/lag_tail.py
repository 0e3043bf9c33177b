"""What bounds the follow lag's tail: the lag with 8 writers, with 2, and with 8 and the daemon at nice -10.

An experiment for docs/benchmarks.md (issue 29's closing note), not a row of ``make bench``: each variant takes
``--turns`` turns of 4 s in the scenario-7 setup (a ``jsproj daemon`` following, the probe appending every 50 ms
and reading its document every 1 ms), the variants taking turns, and prints each variant's lag p50 and p99 over
every probe with the load average. If the tail is the daemon waiting for a core, it shrinks with fewer writers
and with the daemon ahead of them in the scheduler's queue. Run as root for the nice -10 variant.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import subprocess

import scenario_follow as sf
from harness import bench_cluster, load_average, new_database, percentiles, process_tree


def renice(pid: int, niceness: int) -> None:
    for each in process_tree(pid):
        subprocess.run(["renice", "-n", str(niceness), "-p", str(each)], capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    cluster = bench_cluster("jsproj-lag-")
    variants = {"8 writers": (8, 0), "2 writers": (2, 0), "8 writers, daemon at nice -10": (8, -10)}
    lags: dict[str, list[float]] = {name: [] for name in variants}
    loads: dict[str, list[float]] = {name: [] for name in variants}
    try:
        with multiprocessing.get_context("spawn").Pool(8) as pool:
            sf.start_writers(pool)
            side = sf.Side(sf.new_store(functools.partial(new_database, cluster.dsn), "lag_tail"))
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
