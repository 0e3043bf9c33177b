"""What every benchmark scenario shares: result rows, timing, memory, the machine, the report.

A :class:`Row` is one comparison measured in one run: jsproj's figure, the
baseline's, their ratio (oriented so that higher is better for jsproj) and
the target, if the issue set one. Absolute figures drift on shared machines;
the ratios are what the report is about.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MB = 1024 * 1024


@dataclass
class Row:
    """One comparison: ``ours`` and ``baseline`` in ``unit``, and ``ratio`` = ours / baseline.

    ``target`` is the condition the issue set on the ratio, e.g. (">=", 0.5)
    for throughput or ("<=", 2.0) for a latency; None: reported for scale.
    ``floor`` is an absolute minimum of ``ours`` (in ``unit``) the issue set
    too: the row is met only when both hold.
    """

    scenario: str
    what: str
    ours: float
    baseline_name: str
    baseline: float
    unit: str
    target: tuple[str, float] | None = None
    note: str = ""
    floor: float | None = None

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("nan")

    @property
    def met(self) -> bool | None:
        if self.target is None and self.floor is None:
            return None
        floor_met = self.floor is None or self.ours >= self.floor
        if self.target is None:
            return floor_met
        op, bound = self.target
        return floor_met and (self.ratio >= bound if op == ">=" else self.ratio <= bound)

    def cells(self) -> list[str]:
        verdict = "" if self.met is None else (" met" if self.met else " **missed**")
        conditions = [f"{self.target[0]} {self.target[1]:g}x"] if self.target else []
        conditions += [f">= {fmt(self.floor)} {self.unit}"] if self.floor is not None else []
        target = " and ".join(conditions) + verdict if conditions else ""
        return [
            self.scenario,
            self.what,
            f"{fmt(self.ours)} {self.unit}",
            self.baseline_name,
            f"{fmt(self.baseline)} {self.unit}",
            f"{self.ratio:.2f}x",
            target,
        ]

    def to_dict(self) -> dict[str, object]:
        return {"scenario": self.scenario, "what": self.what, "ours": self.ours, "baseline_name": self.baseline_name,
                "baseline": self.baseline, "unit": self.unit, "ratio": self.ratio, "target": self.target,
                "floor": self.floor, "met": self.met, "note": self.note}  # fmt: skip


def fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` took."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def cpu_times() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (Linux /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How busy the machine's CPUs were between two :func:`cpu_times` (1.0: every core, all the time)."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else float("nan")


def process_tree_rss(pid: int) -> int:
    """Resident memory of a process and its descendants, in bytes (Linux)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending += [int(child) for child in children.read().split()]
        except (OSError, StopIteration):
            continue
    return total


def run_sampled(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, int, str]:
    """Run a process to its end: (wall seconds, peak RSS of its process tree sampled every 20 ms, stdout)."""
    peak = 0
    started = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, text=True) as proc:
        while proc.poll() is None:
            peak = max(peak, process_tree_rss(proc.pid))
            time.sleep(0.02)
        out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with exit code {proc.returncode}: {err[-2000:]}")
    return seconds, peak, out


def machine() -> dict[str, str]:
    """The machine and the versions of everything measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as info:
            kb = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
            memory = f"{kb / MB:.1f} GB"
    except (OSError, StopIteration):
        pass
    node = shutil.which("node")
    versions = {
        "python": platform.python_version(),
        "node": subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip() if node else "-",
    }
    for package in ("jsproj", "mini-racer", "psycopg", "eventsourcing"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "-"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} CPUs",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        **versions,
    }


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    header = ["scenario", "what", "jsproj", "compared with", "baseline", "ratio", "target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
