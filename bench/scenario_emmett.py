"""jsproj against Emmett 0.42 (@event-driven-io/emmett-postgresql), on the same PostgreSQL, in the same run.

  * live fold of one 10,000-event stream: jsproj's Node client ``store.live``
    against Emmett's ``aggregateStream`` with an evolve function of the same
    logic (bench/scenario_inline.py's STREAM projection, Balance), the same
    events (bench/scenario_inline.py's ``event``);
  * single-event append latency, p50 and p99, with that projection inline:
    jsproj's default engine (the Python EventStore, a Python-engine inline
    stream projection, deployed as scenario 2 deploys it) against Emmett's
    ``appendToStream`` with the same logic as a Pongo single-stream inline
    projection (``pongoSingleStreamProjection``: a document per stream, in the
    append's transaction).

Each side in a database of its own, warmed up first, then measured in
alternated pairs (jsproj, Emmett, jsproj, Emmett, ...: bench/harness.py's
take_turns); a row's ratio is the median of its pairs' ratios, with their range.
The Node side is one process (bench/node/emmett.js) driven over its stdin.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from harness import ROOT, Pairs, Row, log, percentiles, take_turns
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore
from scenario_inline import STREAM, event

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
SOURCES = [{"file": "Balance.js", "source": STREAM}]
EVENTS = 10_000
SCENARIO = "8 vs Emmett"


def as_url(dsn: str) -> str:
    """A libpq keyword DSN as the URL the pg driver reads (a socket folder goes in ?host=)."""
    parts = psycopg.conninfo.conninfo_to_dict(dsn)
    return (f"postgresql://{quote(str(parts['user']))}@/{quote(str(parts['dbname']))}"
            f"?host={quote(str(parts['host']))}&port={parts['port']}")  # fmt: skip


class NodeSide:
    """bench/node/emmett.js: one JSON request a line in, one answer a line out."""

    def __init__(self, *urls: str) -> None:
        if not (ROOT / "js" / "client" / "node_modules" / "pg").is_dir():
            raise SystemExit("the jsproj Node client's packages are missing: make install (npm ci in js/client)")
        if not (NODE_DIR / "node_modules" / "@event-driven-io" / "emmett-postgresql").is_dir():
            subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)
        node = shutil.which("node") or "node"
        self.proc = subprocess.Popen([node, str(NODE_DIR / "emmett.js"), *urls], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)  # fmt: skip

    def __call__(self, op: str, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op, **request}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench/node/emmett.js stopped (exit code {self.proc.wait()}) at {op}")
        return json.loads(line)

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        if self.proc.wait(timeout=30) != 0:
            raise RuntimeError(f"bench/node/emmett.js failed with exit code {self.proc.returncode}")


def live_rows(dsn: str, node: NodeSide, quick: bool) -> list[Row]:
    count, repeats = (3, 9) if quick else (5, 15)
    stream = "account-live"
    events = [event(n) for n in range(EVENTS)]
    with EventStore(dsn, max_size=2) as store:
        store.migrate()
        deploy(store, SOURCES, lifecycles={"Balance": "live"})
        store.append({"id": stream, "type": "Account", "data": events[:1000]})
        for start in range(1000, EVENTS, 1000):
            store.append({"id": stream, "data": events[start : start + 1000]})
    assert node("seed", stream=stream, events=events)["version"] == EVENTS
    log(f"emmett: live fold of a {EVENTS:,}-event stream, {count} pairs of {repeats} folds a side")
    states: dict[str, Any] = {}

    def fold(side: str) -> float:
        answer = node("live", side=side, stream=stream, repeats=repeats)
        states[side] = answer["state"]
        return statistics.median(answer["ms"])

    for side in ("jsproj", "emmett"):  # warm-up: the JIT, the pools, the projector, Emmett's schema check
        fold(side)
    turns = take_turns({"jsproj": lambda: fold("jsproj"), "emmett": lambda: fold("emmett")}, count,
                       what="the live fold against Emmett's")  # fmt: skip
    assert states["jsproj"] == states["emmett"], f"the folds differ: {states}"
    ms = turns.pair("jsproj", "emmett")
    rates = Pairs([EVENTS / a * 1000 for a in ms.ours], [EVENTS / b * 1000 for b in ms.baseline], ms.loads)
    return [Row(SCENARIO, f"live fold of a {EVENTS:,}-event stream (Node)", rates, "Emmett aggregateStream", "ev/s",
                (">=", 1.0), note=f"jsproj's Node client store.live, {statistics.median(ms.ours):.1f} ms a fold "
                                  f"against {statistics.median(ms.baseline):.1f} ms (medians); each side's figure in "
                                  f"a pair the median of {repeats} folds in its turn")]  # fmt: skip


def append_rows(dsn: str, node: NodeSide, quick: bool) -> list[Row]:
    count, appends, warm = (3, 200, 50) if quick else (5, 500, 100)
    stream = "account-latency"
    # The same events on both sides, in the same order: the two documents must agree at the end.
    ours_next, theirs_next = iter(range(10**9)), iter(range(10**9))
    with EventStore(dsn, max_size=2) as store:
        store.migrate()
        deploy(store, SOURCES)  # as scenario 2: the default engine (Python), inline

        def ours(size: int = appends) -> list[float]:
            samples = []
            for _ in range(size):
                n = next(ours_next)
                message = {"id": stream, "data": event(n), **({"type": "Account"} if n == 0 else {})}
                started = time.perf_counter()
                store.append(message)
                samples.append((time.perf_counter() - started) * 1000)
            return samples

        def theirs(size: int = appends) -> list[float]:
            return node("append", stream=stream, events=[event(next(theirs_next)) for _ in range(size)])["ms"]

        ours(warm)  # warm-up: the sandbox, prepared statements; on Emmett's side its schema and collection
        theirs(warm)
        log(f"emmett: single-event appends, 1 inline projection, {count} pairs of {appends} appends a side")
        turns = take_turns({"jsproj": lambda: percentiles(ours()), "emmett": lambda: percentiles(theirs())}, count,
                           what="appends with an inline projection against Emmett's")  # fmt: skip
        document = store.views("Balance").get(stream)
    assert document == node("document", stream=stream)["document"], f"the documents differ: {document}"
    rows = []
    for label in ("p50", "p99"):
        rows.append(Row(SCENARIO, f"single-event append latency {label}, 1 inline projection",
                        turns.pair(f"jsproj.{label}", f"emmett.{label}"),
                        "Emmett appendToStream, inline Pongo projection", "ms", ("<=", 1.0),
                        note="jsproj: the Python EventStore, a Python-engine inline stream projection; Emmett: "
                             "pongoSingleStreamProjection (a document per stream, in the append's transaction); "
                             f"{appends} appends a side a pair"))  # fmt: skip
    return rows


def run(new_database: Callable[[str], str], quick: bool) -> list[Row]:
    live_dsn = new_database("emmett_jsproj_live")
    urls = [as_url(dsn) for dsn in (live_dsn, new_database("emmett_live"), new_database("emmett_inline"))]
    node = NodeSide(*urls)
    try:
        return live_rows(live_dsn, node, quick) + append_rows(new_database("emmett_jsproj_inline"), node, quick)
    finally:
        node.close()
