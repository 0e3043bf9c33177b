"""What every benchmark scenario shares: alternated pairs, result rows, timing, memory, the machine, the report.

A :class:`Row` is one comparison measured in one run: jsproj's figures, the
baseline's, and their ratio, measured in pairs that take turns (jsproj's
measurement, then the baseline's, again and again: :func:`take_turns`), so
that the drift of a machine shared with other work hits both sides alike.
A row reports the median of its pairs' ratios with their min and max, and
the machine's load average before it was measured (a warning on stderr when
that is above :data:`LOAD_WARNING`). Absolute figures drift on shared
machines; the ratios are what the report is about.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from jsproj.tools.postgres_cluster import Cluster, temporary_cluster

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MB = 1024 * 1024
#: Pairs per row unless a scenario says otherwise: the fewest whose median is not one measurement.
PAIRS = 3
#: The 1-minute load average above which a row is measured with a warning (2 cores: others keep one busy).
LOAD_WARNING = 1.5

#: What one measurement of a turn gives: one figure, or several by name (e.g. a rate and a peak RSS).
Figures = float | Mapping[str, float]


@dataclass
class Pairs:
    """The figures of one comparison, pair by pair: ``ours[i]`` and ``baseline[i]`` measured in the same turn.

    ``loads`` is the 1-minute load average when each pair began.
    """

    ours: list[float]
    baseline: list[float]
    loads: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [o / b if b else float("nan") for o, b in zip(self.ours, self.baseline, strict=True)]

    @property
    def load(self) -> float:
        """The load average before the first pair: what the row was measured under."""
        return self.loads[0] if self.loads else float("nan")

    def __len__(self) -> int:
        return len(self.ours)

    def scaled(self, factor: float) -> Pairs:
        """The same pairs in another unit (e.g. seconds to milliseconds)."""
        return Pairs([o * factor for o in self.ours], [b * factor for b in self.baseline], self.loads)


@dataclass
class Turns:
    """Figures by name, one per round, from measurements that took turns (:func:`take_turns`)."""

    figures: dict[str, list[float]] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)

    def add(self, name: str, figures: Figures) -> None:
        """One measurement's figures: ``name``, or ``name.key`` for each of several."""
        items = figures.items() if isinstance(figures, Mapping) else [("", figures)]
        for key, value in items:
            self.figures.setdefault(f"{name}.{key}" if key else name, []).append(value)

    def pair(self, ours: str, baseline: str) -> Pairs:
        """Two of the figures as pairs: the ones of the same round go together."""
        return Pairs(self.figures[ours], self.figures[baseline], self.loads)

    def median(self, name: str) -> float:
        return statistics.median(self.figures[name])


def load_average() -> float:
    """The machine's 1-minute load average."""
    return os.getloadavg()[0]


def load_before(what: str) -> float:
    """The load average before measuring ``what``; above :data:`LOAD_WARNING`, said on stderr (the row goes on)."""
    load = load_average()
    if load > LOAD_WARNING:
        log(f"warning: load average {load:.2f} (above {LOAD_WARNING:g}) before measuring {what}")
    return load


def take_turns(
    measures: Mapping[str, Callable[[], Figures]], rounds: int = PAIRS, *, what: str, swap: bool = False
) -> Turns:
    """Run ``measures`` in turn, in their order, ``rounds`` times (A B A B A B ...): drift hits them alike.

    With ``swap`` every other round runs them in the reverse order (A B B A A B ...), for measurements whose
    first in a round is favoured (e.g. by a checkpoint before it). ``what`` names the row(s) in the load warning.
    """
    turns = Turns()
    for number in range(rounds):
        turns.loads.append(load_before(what) if number == 0 else load_average())
        order = list(measures.items())
        for name, measure in order[::-1] if swap and number % 2 else order:
            turns.add(name, measure())
    return turns


def alternate(ours: Callable[[], float], baseline: Callable[[], float], pairs: int = PAIRS, *, what: str) -> Pairs:
    """jsproj's measurement and its baseline's in turns, ``pairs`` times: their figures pair by pair."""
    return take_turns({"ours": ours, "baseline": baseline}, pairs, what=what).pair("ours", "baseline")


@dataclass
class Row:
    """One comparison: ``pairs`` of (jsproj's figure, the baseline's) in ``unit``; the ratio of each pair is
    ours / baseline, and the row's ratio is their median.

    ``target`` is the condition the issue set on the ratio, e.g. (">=", 0.5)
    for throughput or ("<=", 2.0) for a latency; None: reported for scale.
    ``floor`` is an absolute minimum of ``ours`` (in ``unit``, the median of its
    figures) the issue set too: the row is met only when both hold.
    """

    scenario: str
    what: str
    pairs: Pairs
    baseline_name: str
    unit: str
    target: tuple[str, float] | None = None
    note: str = ""
    floor: float | None = None

    @property
    def ours(self) -> float:
        return statistics.median(self.pairs.ours)

    @property
    def baseline(self) -> float:
        return statistics.median(self.pairs.baseline)

    @property
    def ratio(self) -> float:
        """The median of the pairs' ratios (not the ratio of the medians: each pair shares its moment)."""
        return statistics.median(self.pairs.ratios)

    @property
    def met(self) -> bool | None:
        if self.target is None and self.floor is None:
            return None
        floor_met = self.floor is None or self.ours >= self.floor
        if self.target is None:
            return floor_met
        op, bound = self.target
        return floor_met and (self.ratio >= bound if op == ">=" else self.ratio <= bound)

    def ratio_cell(self) -> str:
        """The median ratio, with the min and max of the pairs' ratios when there are several."""
        ratios = self.pairs.ratios
        spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
        return f"{self.ratio:.2f}x{spread}"

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
            self.ratio_cell(),
            str(len(self.pairs)),
            f"{self.pairs.load:.2f}",
            target,
        ]

    def to_dict(self) -> dict[str, object]:
        ratios = self.pairs.ratios
        pairs = [{"ours": o, "baseline": b, "ratio": r, "load": load}
                 for o, b, r, load in zip(self.pairs.ours, self.pairs.baseline, ratios, self.pairs.loads or
                                          [float("nan")] * len(ratios), strict=True)]  # fmt: skip
        return {"scenario": self.scenario, "what": self.what, "ours": self.ours, "baseline_name": self.baseline_name,
                "baseline": self.baseline, "unit": self.unit, "ratio": self.ratio, "ratio_min": min(ratios),
                "ratio_max": max(ratios), "pairs": pairs, "load": self.pairs.load, "target": self.target,
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


def database_dsn(admin_dsn: str, name: str) -> str:
    """The DSN of database ``name`` on the cluster of ``admin_dsn`` (the bench's cluster's, database jsproj)."""
    return admin_dsn.replace("dbname=jsproj", f"dbname={name}")


def bench_cluster(prefix: str) -> Cluster:
    """The bench's PostgreSQL: durable settings, room for the writers; started (``destroy()`` it after)."""
    cluster = temporary_cluster(prefix=prefix, shared_buffers="512MB", max_connections="60")
    cluster.init(durable=True)
    cluster.start()
    return cluster


def new_database(admin_dsn: str, name: str) -> str:
    """A new empty database ``name`` on the cluster of ``admin_dsn`` (dropped first if there is one); its DSN."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"drop database if exists {name}")
        conn.execute(f"create database {name}")
    return database_dsn(admin_dsn, name)


def clone_database(admin_dsn: str, template: str, name: str) -> str:
    """A new database ``name``, a copy of ``template`` (no one may be connected to it): the same store for every
    pair of a row, in the state a scenario set up once, without loading it again. Returns its DSN."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"drop database if exists {name}")
        conn.execute(f"create database {name} template {template}")
    return database_dsn(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    """Drop a pair's copy once measured (full-size stores are hundreds of MB each)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"drop database if exists {name} with (force)")


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


def process_tree(pid: int) -> list[int]:
    """A process and its descendants now (Linux: /proc/<pid>/task/<pid>/children), the process first."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending += [int(child) for child in children.read().split()]
        except OSError:
            continue
    return found


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name (the state first); [] when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, with those of the children it waited for (Linux
    /proc/<pid>/stat: utime, stime, cutime, cstime); 0 when it is gone."""
    fields = _stat(pid)
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # stat(5)'s fields 14 to 17


def tree_cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds` of a process and its descendants: a child that exited counts once reaped, in its
    parent's."""
    return sum(cpu_seconds(current) for current in process_tree(pid))


def postmaster_pid(data_dir: Path) -> int:
    """The pid of a running cluster's postmaster: the first line of its data folder's postmaster.pid."""
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def server_settled(postmaster: int, database: str, timeout: float = 10.0) -> None:
    """Wait until no backend of the cluster serves a client of ``database`` (a process titled ``postgres: USER
    DATABASE [local] ...``: the cluster listens on its socket only) and no process of it has exited unreaped (a
    zombie): then every backend that ended is in the postmaster's cutime and cstime (:func:`tree_cpu_seconds`),
    once."""
    deadline = time.monotonic() + timeout
    while True:
        busy = []
        for pid in process_tree(postmaster)[1:]:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    title = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if (_stat(pid) or ["?"])[0] == "Z" or f" {database} [local]" in title:
                busy.append(pid)
        if not busy:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"server processes {busy} still serve {database} or are not reaped after {timeout:g} s")
        time.sleep(0.005)


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
    """The rows as a markdown table: jsproj and baseline are the medians of each side's figures, the ratio the
    median of the pairs' ratios (min-max of them), load the 1-minute load average before the row."""
    header = ["scenario", "what", "jsproj", "compared with", "baseline", "ratio (min-max)", "pairs", "load", "target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def percentiles(samples: list[float], scale: float = 1.0) -> dict[str, float]:
    """The p50 and p99 of ``samples`` (at least two), each times ``scale`` (1000: seconds as ms)."""
    scaled = [sample * scale for sample in samples]
    return {"p50": statistics.median(scaled), "p99": statistics.quantiles(scaled, n=100, method="inclusive")[98]}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
