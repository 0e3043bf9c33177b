"""A/B: this tree against an earlier commit, measured in one run, the two taking turns.

    python bench/ab.py --base 1074600 --label "issue 27"             # writes its table into docs/benchmarks.md
    python bench/ab.py --base 1074600 --label "issue 27" --quick     # one round, printed only
    python bench/ab.py --base 1074600 --label x --only daemon-build subscriber

The base commit is checked out in a git worktree beside this one (made once,
kept: ``$TMPDIR/jsproj-ab-<commit>``); each measurement of bench/ab_probe.py
runs in a process of its own with PYTHONPATH naming one tree, the two trees
taking turns, round after round, on one throwaway PostgreSQL (a database per
measurement). The JavaScript languages are the ones installed (jsproj's
builds) in both arms: what differs is jsproj's own code. A row's ratio is
this tree's speed over the base's (above 1: faster): the median of the
rounds' ratios (each round's two measurements are a pair), with their min
and max and the load average before the row's first pair (above 1.5:
warned about on stderr, as bench/run.py does). docs/benchmarks.md
keeps one table per label, between markers this script writes. Not a test:
nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from harness import load_average, load_before

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "benchmarks.md"
#: measurement -> (what it is, unit, higher is better)
MEASURES = {
    "fold": ("Python host: fold 20,000 events in pages of 1,000 (bridge)", "events/s", True),
    "rebuild-python": ("rebuild 20,000 stored events on redeploy, Python engine", "events/s", True),
    "rebuild-plv8": ("rebuild 20,000 stored events on redeploy, PLV8", "events/s", True),
    "append": ("append latency, no projection", "ms", False),
    "inline-python": ("append latency, 1 inline projection, Python engine", "ms", False),
    "inline-plpython": ("append latency, 1 inline projection, plpython3u", "ms", False),
    "inline-plv8": ("append latency, 1 inline projection, PLV8", "ms", False),
    "inline-pljs": ("append latency, 1 inline projection, PL/JS", "ms", False),
    "read-all": ("read_all of 20,000 events in pages of 1,000", "events/s", True),
    "daemon-build": ("daemon: build an async projection of 20,000 events, start to caught up", "events/s", True),
    "daemon-follow": ("daemon: catch up on 20,000 new events, start to caught up", "events/s", True),
    "subscriber": ("Python subscriber: catch up on 20,000 events", "events/s", True),
}


def base_tree(commit: str) -> Path:
    """The base commit, checked out beside this tree (made once; its SQL and JavaScript are its own)."""
    tree = Path(tempfile.gettempdir()) / f"jsproj-ab-{commit}"
    if not (tree / "src" / "jsproj").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--force", "--detach", str(tree), commit],
                       check=True, capture_output=True)  # fmt: skip
    return tree


def measure(tree: Path, what: str, dsn: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ab_probe.py"), what, dsn], env=env,
                          capture_output=True, text=True, check=False, timeout=900)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{what} in {tree}: {done.stderr.strip()[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["value"])


@dataclass
class Measured:
    """Each measurement's values by arm, one per round, and the load average before each round's pair."""

    values: dict[str, dict[str, list[float]]]
    loads: dict[str, list[float]]


def new_database(admin_dsn: str, number: int) -> str:
    """A database for one measurement, with the JavaScript languages."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"create database ab_{number} template template0")
    dsn = admin_dsn.replace("dbname=jsproj", f"dbname=ab_{number}")
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("create extension if not exists plv8")
        db.execute("create extension if not exists pljs")
    return dsn


def run(trees: dict[str, Path], measures: list[str], rounds: int) -> Measured:
    sys.path.insert(0, str(ROOT / "src"))
    from jsproj.tools.postgres_cluster import temporary_cluster

    cluster = temporary_cluster(prefix="jsproj-ab-", shared_buffers="256MB")
    cluster.init(durable=True)
    cluster.start()
    measured = Measured({what: {arm: [] for arm in trees} for what in measures}, {what: [] for what in measures})
    try:
        number = 0
        for round_ in range(rounds):
            for what in measures:
                measured.loads[what].append(load_before(f"{what} (A/B)") if round_ == 0 else load_average())
                for arm, tree in trees.items():
                    number += 1
                    measured.values[what][arm].append(measure(tree, what, new_database(cluster.dsn, number)))
                    print(f"{what} {arm}: {measured.values[what][arm][-1]:.3f}", file=sys.stderr)
    finally:
        cluster.destroy()
    return measured


def render(base: str, label: str, measured: Measured) -> str:
    rounds = len(next(iter(measured.values.values()))["after"])
    lines = [
        f"Against `{base}` (main before {label}), {rounds} round(s), the two taking turns in one run",
        f"(`python bench/ab.py --base {base} --label \"{label}\"`); ratio: this tree's speed over the base's, the",
        "median of the rounds' ratios (min-max of them); before and after: medians; load: the 1-minute load average",
        "before the row's first round.",
        "",
        "| measurement | before | after | ratio (min-max) | rounds | load |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for what, runs in measured.values.items():
        label_text, unit, higher = MEASURES[what]
        pairs = list(zip(runs["after"], runs["before"], strict=True))
        ratios = [after / before if higher else before / after for after, before in pairs]
        ratio = f"{statistics.median(ratios):.2f}x" + (
            f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
        )
        before, after = statistics.median(runs["before"]), statistics.median(runs["after"])
        lines.append(f"| {label_text} | {before:,.2f} {unit} | {after:,.2f} {unit} | {ratio} | {len(ratios)} |"
                     f" {measured.loads[what][0]:.2f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def write(label: str, table: str) -> None:
    """The table into docs/benchmarks.md, between its label's markers (which must be there)."""
    start, end = f"<!-- A/B {label}: written by bench/ab.py -->", f"<!-- end of A/B {label} -->"
    text = REPORT.read_text("utf-8")
    if start not in text or end not in text:
        raise SystemExit(f"docs/benchmarks.md has no markers for {label!r}: add {start} and {end}")
    before, rest = text.split(start, 1)
    REPORT.write_text(before + start + "\n" + table + end + rest.split(end, 1)[1], "utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--label", required=True, help="what the table is about (its markers in the report)")
    parser.add_argument("--quick", action="store_true", help="one round, printed only")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=sorted(MEASURES), help="these measurements only")
    args = parser.parse_args()
    measures = args.only or list(MEASURES)
    measured = run({"before": base_tree(args.base), "after": ROOT}, measures, 1 if args.quick else args.rounds)
    table = render(args.base, args.label, measured)
    print(table)
    if not args.quick:
        write(args.label, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
