"""The benchmark report's verdicts and ratios: a row is met only when its ratio target and its absolute floor both
hold, and its ratio is the median of its alternated pairs' ratios, shown with their range."""

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


def row(ours: list[float], baseline: list[float], unit: str = "ev/s", **options):
    module = harness()
    return module.Row("s", "w", module.Pairs(ours, baseline, [0.5] * len(ours)), "b", unit, **options)


def test_a_row_under_its_absolute_floor_is_missed_even_when_its_ratio_is_met() -> None:
    missed = row([94_900] * 3, [80_000] * 3, target=(">=", 1.0), floor=100_000)
    assert missed.ratio > 1.0
    assert missed.met is False
    assert missed.cells()[-1] == ">= 1x and >= 100,000 ev/s **missed**"


def test_a_row_meeting_both_is_met_and_a_row_with_neither_has_no_verdict() -> None:
    assert row([150_000] * 3, [100_000] * 3, target=(">=", 1.0), floor=100_000).met is True
    assert row([150_000] * 3, [100_000] * 3, floor=200_000).met is False
    assert row([1] * 3, [1] * 3, unit="MB").met is None


def test_the_ratio_is_the_median_pair_ratio_with_its_range_and_the_pairs_counted() -> None:
    # The pairs' ratios are 3.0, 0.5 and 2.0: the row's is their median (2.0), not the medians' ratio (100 / 100)
    measured = row([300, 100, 100], [100, 200, 50], target=(">=", 1.5))
    assert measured.ratio == 2.0
    assert measured.met is True
    cells = " | ".join(measured.cells())
    assert "2.00x (0.50-3.00)" in cells and "| 3 |" in cells, cells


def test_a_failing_scenario_is_reported_and_the_others_keep_their_rows(monkeypatch, capsys) -> None:
    monkeypatch.syspath_prepend(str(HARNESS.parent))  # bench/run.py imports its scenarios by their module names
    import run  # (here: importable only once bench/ is on the path)

    kept = row([2] * 3, [1] * 3)

    def broken(*_: object) -> list[object]:
        raise RuntimeError("a scenario broke")

    monkeypatch.setattr(run.scenario_growth, "run", broken)
    monkeypatch.setattr(run.scenario_bridge, "run", lambda quick: [kept])
    rows, failed = run.run_scenarios({"growth", "bridge"}, None, lambda name: name, quick=True)
    assert (rows, failed) == ([kept], ["growth"])
    assert "scenario growth failed" in capsys.readouterr().err


def test_percentiles_give_the_median_and_the_99th_in_the_unit_asked() -> None:
    assert harness().percentiles([s / 1000 for s in range(1, 101)], 1000) == {"p50": 50.5, "p99": 99.01}
