"""Engine benchmark: fold events through one stream projection and one aggregate.

Compares, in one run and on the same events, the same job -- events in,
changed documents out, documents kept between pages -- done by:
  * python text: the Python host (sandboxed V8 worker, one route and one apply
    call per page) with events arriving as JSON text, as a store reads them
    from PostgreSQL (or a file): the headline figure;
  * node text: Node.js running the same engine with the same host loop, with
    events arriving as JSON text and documents kept as JSON text, as a Node
    host reading from and writing to PostgreSQL has them (bench/fold_node.js);
  * node objects: the same loop with everything as JavaScript objects in
    memory: the engine's own limit, no I/O format at all;
  * python dicts: the Python host with events as Python dicts, encoded to JSON
    inside the timed loop;
  * one bridge crossing per event (page size 1), on a smaller sample.
Prints events/s and ratios. Not a test: nothing here asserts on speed.

    python bench/engine_fold.py [--events 200000] [--streams 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jsproj.projections import Projections

HERE = Path(__file__).resolve().parent
SOURCES = [{"file": "fold_projections.js", "source": (HERE / "fold_projections.js").read_text()}]


def make_records(count: int, streams: int) -> list[dict[str, Any]]:
    versions = [0] * streams
    records = []
    for i in range(count):
        s = i % streams
        versions[s] += 1
        records.append(
            {
                "position": i + 1,
                "streamId": f"account-{s}",
                "streamType": "Account",
                "version": versions[s],
                "timestamp": "2026-01-01T00:00:00.000Z",
                "metadata": None,
                "event": {
                    "$type": "Withdrawn" if i % 5 == 4 else "Deposited",
                    "$id": f"e{i}",
                    "amount": i % 97 + 1,
                    "at": i,
                },
            }
        )
    return records


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def python_host(
    projections: Projections, records: list[dict[str, Any]], page_size: int, *, as_text: bool = False
) -> tuple[float, int]:
    """The Python host loop; returns (seconds, checksum).

    With ``as_text`` the events arrive as JSON text (as a store reads them from
    PostgreSQL or a file); otherwise as Python dicts, encoded in the timed loop.
    """
    store: dict[str, dict[str, Any]] = {"Balance": {}, "Bank": {}}
    texts = [compact(records[i : i + page_size]) for i in range(0, len(records), page_size)] if as_text else None
    started = time.perf_counter()
    for number, start in enumerate(range(0, len(records), page_size)):
        page = texts[number] if texts is not None else compact(records[start : start + page_size])
        routed = projections.route(page)
        documents = {name: {key: store[name].get(key) for key in keys} for name, keys in routed.items()}
        result = projections.apply(page, documents)
        if result.errors:
            raise result.errors[0]
        for name, change in result.changes.items():
            store[name].update(change.upserts)
    seconds = time.perf_counter() - started
    bank = store["Bank"]["Bank"]
    return seconds, bank["deposited"] - bank["withdrawn"]


def node_host(events: int, streams: int, page_size: int, mode: str) -> tuple[float, int]:
    done = subprocess.run(
        ["node", str(HERE / "fold_node.js"), str(events), str(streams), str(page_size), mode],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = json.loads(done.stdout)
    return out["seconds"], out["checksum"]


def best(runs: int, fn: Any) -> tuple[float, int]:
    results = [fn() for _ in range(runs)]
    return min(results, key=lambda r: r[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--streams", type=int, default=1_000)
    parser.add_argument("--page-sizes", default="100,1000,5000,20000")
    parser.add_argument("--per-event-sample", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    page_sizes = [int(p) for p in args.page_sizes.split(",")]
    records = make_records(args.events, args.streams)

    print(f"# engine fold: {args.events:,} events, {args.streams:,} streams, best of {args.runs}")
    print(f"# {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}")  # fmt: skip
    rows = []
    with Projections(SOURCES) as projections:
        python_host(projections, records[:1000], 1000)  # warm up the worker
        for page_size in page_sizes:
            text_seconds, text_sum = best(
                args.runs, lambda ps=page_size: python_host(projections, records, ps, as_text=True)
            )
            py_seconds, py_sum = best(args.runs, lambda ps=page_size: python_host(projections, records, ps))
            node_text, node_text_sum = best(
                args.runs, lambda ps=page_size: node_host(args.events, args.streams, ps, "text")
            )
            node_objects, node_sum = best(
                args.runs, lambda ps=page_size: node_host(args.events, args.streams, ps, "objects")
            )
            assert py_sum == node_sum == text_sum == node_text_sum, (py_sum, node_sum, text_sum, node_text_sum)
            rates = (text_seconds, node_text, node_objects, py_seconds)
            rows.append((page_size, *(args.events / seconds for seconds in rates)))
        sample = records[: args.per_event_sample]
        per_seconds, _ = python_host(projections, sample, 1)
        per_event_rate = len(sample) / per_seconds

    print(
        f"{'page size':>9} {'python text':>12} {'node text':>11} {'node objects':>13} {'python dicts':>13}"
        f" {'py/node text':>13} {'py/node objects':>16} {'dicts/node text':>16}   (events/s)"
    )
    for page_size, py_text, node_text, node_objects, py_dicts in rows:
        print(
            f"{page_size:>9} {py_text:>12,.0f} {node_text:>11,.0f} {node_objects:>13,.0f} {py_dicts:>13,.0f}"
            f" {py_text / node_text:>12.2f}x {py_text / node_objects:>15.2f}x {py_dicts / node_text:>15.2f}x"
        )
    best_python = max(rows, key=lambda r: r[1])
    print(f"\none bridge crossing per event (page size 1, {len(sample):,} events): {per_event_rate:,.0f} ev/s")
    speedup = best_python[1] / per_event_rate
    print(f"batched Python host (page size {best_python[0]}) vs one crossing per event: {speedup:,.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
