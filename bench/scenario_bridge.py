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
  * node plain: the text job without jsproj, folded by hand-written code (a
    switch on the event type): the baseline no change to the engine moves,
    so the engine's own cost (isolation, the value rule) shows against it;
  * python dicts: the Python host with events as Python dicts, encoded to JSON
    inside the timed loop;
  * one bridge crossing per event (page size 1), on a smaller sample;
  * large documents: one aggregate holding 1,000 and 10,000 counters, folded
    by the engine in Node (bench/large_node.js) vs the same job by
    hand-written code: what the value rule costs on documents too large to
    copy after every event, which the engine tracks instead (js/lib/tracking.js).
The contenders take turns, three rounds (the median of the pairs' ratios;
one crossing per event runs in the same rounds as the page size 5,000 fold).
Part of ``python bench/run.py``; not a test: nothing here asserts on speed.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from harness import PAIRS, Row, alternate, log, take_turns
from jsproj.engine.projections import Projections
from jsproj.engine.simulation import apply_page

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
    """The Python host loop (jsproj.engine.simulation.apply_page per page); returns (seconds, checksum).

    With ``as_text`` the events arrive as JSON text (as a store reads them from
    PostgreSQL or a file); otherwise as Python dicts, encoded in the timed loop.
    """
    store: dict[str, dict[str, Any]] = {"Balance": {}, "Bank": {}}
    texts = [compact(records[i : i + page_size]) for i in range(0, len(records), page_size)] if as_text else None
    started = time.perf_counter()
    for number, start in enumerate(range(0, len(records), page_size)):
        apply_page(
            projections, texts[number] if texts is not None else compact(records[start : start + page_size]), store
        )
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


def large_node(keys: int, events: int, mode: str) -> tuple[float, int]:
    done = subprocess.run(["node", str(HERE / "large_node.js"), str(keys), str(events), mode],
                          capture_output=True, text=True, check=True)  # fmt: skip
    out = json.loads(done.stdout)
    return out["seconds"], out["checksum"]


def checked(result: tuple[float, int], sums: set[int]) -> float:
    """The seconds of a fold, its checksum kept (every contender's must be the same)."""
    seconds, checksum = result
    sums.add(checksum)
    return seconds


def large_row(keys: int, events: int) -> Row:
    log(f"large documents: one aggregate of {keys:,} counters, {events:,} events, {PAIRS} pairs")
    sums: set[int] = set()
    pairs = alternate(lambda: events / checked(large_node(keys, events, "engine"), sums),
                      lambda: events / checked(large_node(keys, events, "plain"), sums),
                      what=f"large documents, {keys:,} counters")  # fmt: skip
    assert len(sums) == 1, sums
    return Row("6 large documents", f"fold into one aggregate of {keys:,} counters, Node", pairs,
               "the same job by hand-written code", "ev/s")  # fmt: skip


def large_documents(quick: bool) -> list[Row]:
    events = 50_000 if quick else 200_000
    return [large_row(keys, events) for keys in (1_000, 10_000)]


BASELINES = {
    "node_text": "Node, same engine and host loop, JSON text in and out",
    "node_objects": "Node, objects in memory (the engine's limit)",
    "node_plain": "Node, the same job by hand-written code, no engine",
}


def page_rows(projections: Projections, records: list[dict[str, Any]], page_size: int) -> list[Row]:
    """The Python host against Node's three folds at ``page_size``, in rounds; at 5,000 also against one bridge
    crossing per event (on a sample)."""
    events, streams, sample = len(records), len({r["streamId"] for r in records}), records[:2000]
    sums: set[int] = set()
    measures = {
        "python": lambda: events / checked(python_host(projections, records, page_size, as_text=True), sums),
        **{name: lambda mode=name[5:]: events / checked(node_host(events, streams, page_size, mode), sums)
           for name in BASELINES},
    }  # fmt: skip
    if page_size == 5000:
        measures["per_event"] = lambda: len(sample) / python_host(projections, sample, 1)[0]
    turns = take_turns(measures, what=f"the bridge at page size {page_size} ({len(measures) - 1} rows)")
    assert len(sums) == 1, sums
    what = f"fold, Python host, page size {page_size}"
    rows = [Row("5 sandbox bridge", what, turns.pair("python", name), label, "ev/s",
                (">=", 0.5) if page_size == 1000 and name == "node_text" else None)
            for name, label in BASELINES.items()]  # fmt: skip
    if "per_event" in measures:
        rows.append(Row("5 sandbox bridge", what, turns.pair("python", "per_event"),
                        "the Python host, one bridge crossing per event", "ev/s"))  # fmt: skip
    return rows


def run(quick: bool) -> list[Row]:
    events, streams = (50_000, 1_000) if quick else (200_000, 1_000)
    records = make_records(events, streams)
    rows = []
    with Projections(SOURCES) as projections:
        python_host(projections, records[:1000], 1000)  # warm up the worker
        for page_size in (1000, 5000):
            log(f"bridge: {events:,} events, page size {page_size}, Python host and Node, {PAIRS} rounds")
            rows += page_rows(projections, records, page_size)
    return rows + large_documents(quick)
