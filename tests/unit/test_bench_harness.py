"""The benchmark report's verdicts: a row is met only when its ratio target and its absolute floor both hold."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "bench" / "harness.py"


def harness():  # bench/ is not a package: load its module from the file
    spec = importlib.util.spec_from_file_location("bench_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_harness"] = module
    spec.loader.exec_module(module)
    return module


def test_a_row_under_its_absolute_floor_is_missed_even_when_its_ratio_is_met() -> None:
    row = harness().Row("4 rebuild", "rebuild", 94_900, "Node", 80_000, "ev/s", (">=", 1.0), floor=100_000)
    assert row.ratio > 1.0
    assert row.met is False
    assert row.cells()[-1] == ">= 1x and >= 100,000 ev/s **missed**"


def test_a_row_meeting_both_is_met_and_a_row_with_neither_has_no_verdict() -> None:
    module = harness()
    assert module.Row("s", "w", 150_000, "b", 100_000, "ev/s", (">=", 1.0), floor=100_000).met is True
    assert module.Row("s", "w", 150_000, "b", 100_000, "ev/s", floor=200_000).met is False
    assert module.Row("s", "w", 1, "b", 1, "MB").met is None
