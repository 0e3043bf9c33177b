"""A/B: what the isolation of issue 26 costs, against the commit before it, measured in one run.

    python bench/isolation_ab.py            # writes its table into docs/benchmarks.md
    python bench/isolation_ab.py --quick    # one round, printed only

The commit before (BASE) is checked out in a git worktree beside this one;
each measurement of bench/isolation_probe.py runs in a process of its own
with PYTHONPATH naming one tree, the two trees taking turns, round after
round, on one throwaway PostgreSQL (a database per measurement). The
JavaScript languages are the ones installed (jsproj's builds) in both arms:
what differs is jsproj's own code. A row's ratio is this commit's speed over
the one before's (above 1: faster); the target is no row below 0.9.
Not a test: nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
BASE = "380e9d5"  # main before issue 26
BASE_TREE = Path(tempfile.gettempdir()) / "jsproj-isolation-base"  # a worktree of BASE, made once, kept
REPORT = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- isolation A/B: written by bench/isolation_ab.py -->", "<!-- end of isolation A/B -->"
#: measurement -> (what it is, unit, higher is better)
MEASURES = {
    "fold": ("Python host: fold 20,000 events in pages of 1,000 (bridge)", "events/s", True),
    "rebuild-python": ("rebuild 20,000 stored events on redeploy, Python engine", "events/s", True),
    "rebuild-plv8": ("rebuild 20,000 stored events on redeploy, PLV8", "events/s", True),
    "inline-python": ("append latency, 1 inline projection, Python engine", "ms", False),
    "inline-plpython": ("append latency, 1 inline projection, plpython3u", "ms", False),
    "inline-plv8": ("append latency, 1 inline projection, PLV8", "ms", False),
    "inline-pljs": ("append latency, 1 inline projection, PL/JS", "ms", False),
}


def base_tree() -> Path:
    """The commit before, checked out beside this tree (made once; its SQL and JavaScript are its own)."""
    if not (BASE_TREE / "src" / "jsproj").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--force", "--detach", str(BASE_TREE), BASE],
                       check=True, capture_output=True)  # fmt: skip
    return BASE_TREE


def measure(tree: Path, what: str, dsn: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "isolation_probe.py"), what, dsn], env=env,
                          capture_output=True, text=True, check=False, timeout=900)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{what} in {tree}: {done.stderr.strip()[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["value"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, printed only")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from jsproj.tools.postgres_cluster import temporary_cluster

    trees = {"before": base_tree(), "after": ROOT}
    cluster = temporary_cluster(prefix="jsproj-ab-", shared_buffers="256MB")
    cluster.init(durable=True)
    cluster.start()
    values: dict[str, dict[str, list[float]]] = {what: {"before": [], "after": []} for what in MEASURES}
    try:
        with psycopg.connect(cluster.dsn, autocommit=True) as admin:
            admin.execute("create extension if not exists plv8")
            admin.execute("create extension if not exists pljs")
        number = 0
        for _ in range(1 if args.quick else 5):
            for what in MEASURES:
                for arm, tree in trees.items():
                    number += 1
                    with psycopg.connect(cluster.dsn, autocommit=True) as admin:
                        admin.execute(f"create database ab_{number} template template0")
                        dsn = cluster.dsn.replace("dbname=jsproj", f"dbname=ab_{number}")
                    with psycopg.connect(dsn, autocommit=True) as db:
                        db.execute("create extension plv8")
                        db.execute("create extension pljs")
                    values[what][arm].append(measure(tree, what, dsn))
                    print(f"{what} {arm}: {values[what][arm][-1]:.3f}", file=sys.stderr)
    finally:
        cluster.destroy()
    table = render(values)
    print(table)
    if not args.quick:
        text = REPORT.read_text("utf-8")
        before, rest = text.split(START, 1)
        REPORT.write_text(before + START + "\n" + table + END + rest.split(END, 1)[1], "utf-8")
    return 0


def render(values: dict[str, dict[str, list[float]]]) -> str:
    lines = [
        f"Against `{BASE}` (main before issue 26), medians of {len(values['fold']['after'])} round(s), the two taking",
        "turns in one run (`python bench/isolation_ab.py`); ratio: this commit's speed over the one before's.",
        "",
        "| measurement | before | after | ratio |",
        "|---|---:|---:|---:|",
    ]
    for what, (label, unit, higher) in MEASURES.items():
        before, after = statistics.median(values[what]["before"]), statistics.median(values[what]["after"])
        ratio = after / before if higher else before / after
        lines.append(f"| {label} | {before:,.2f} {unit} | {after:,.2f} {unit} | {ratio:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
