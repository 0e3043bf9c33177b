"""bench/citus_sim.py, docs/scaling.md's simulation of a sharded log: a vector of per-shard cursors (with the shard's
epoch) delivers every committed event once, in each stream's order, where one cursor over every shard skips events;
and the table docs/scaling.md shows is the simulation's output."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTOR = "vector of per-shard (epoch, tx, position) cursors"


def simulation():  # bench/ is not a package: load its module from the file
    spec = importlib.util.spec_from_file_location("bench_citus_sim", ROOT / "bench" / "citus_sim.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_citus_sim"] = module
    spec.loader.exec_module(module)
    return module


def test_the_vector_cursor_delivers_every_event_once_and_one_cursor_skips_some() -> None:
    sim = simulation()
    for seed in (1, 2):
        result = sim.run(seed, steps=2000 if seed > 1 else 3000)
        readers = result["readers"]
        vector = readers[VECTOR]
        assert (vector["delivered"], vector["skipped"], vector["twice"]) == (result["committed"], 0, 0), seed
        assert vector["stream_order"] is True
        others = {name: figures["skipped"] for name, figures in readers.items() if name != VECTOR}
        assert len(others) == 3 and all(skipped > 0 for skipped in others.values()), others
        assert all(figures["twice"] == 0 for figures in readers.values())
        assert result["view"]["sum_differs"] == 0  # a commutative fold agrees whatever the shards' order
    assert result["view"]["customers"] == 8


def test_the_docs_show_the_simulations_table() -> None:
    sim = simulation()
    result = sim.run(1)
    assert result["view"]["last_differs"] > 0  # an order-dependent fold does not (seed 1: as the docs say)
    doc = (ROOT / "docs" / "scaling.md").read_text("utf-8")
    assert sim.table(result) in doc, "docs/scaling.md's simulation table is not bench/citus_sim.py's output"
