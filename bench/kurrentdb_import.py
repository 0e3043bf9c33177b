"""Import of a KurrentDB export against `jsproj append` of the same events (issue 32: >= 0.5x), and a second
import of the same file (idempotent: nothing appended).

Both run as a user would, the CLI into a fresh database each time, in turns: `jsproj import kurrentdb
export.jsonl` and `jsproj append events.jsonl`, where events.jsonl holds the very append messages the import
makes of the export (one message an event: its own id, metadata and time), so that both write the same rows and
the difference is the import's reading of KurrentDB's shape and its look for ids the store holds already.

    python bench/kurrentdb_import.py [--events 1000000] [--streams 1000] [--pairs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from harness import Pairs, Row, alternate, bench_cluster, log, new_database, table
from jsproj.store.kurrentdb_import import read_export

JSPROJ = str(Path(sys.executable).parent / "jsproj")


def write_files(folder: Path, events: int, streams: int) -> tuple[Path, Path]:
    """An export of ``events`` events over ``streams`` streams, interleaved as $all would give them, and the
    append messages the import makes of it."""
    export, messages = folder / "export.jsonl", folder / "events.jsonl"
    with export.open("w") as out:
        for n in range(events):
            stream = f"cart-{n % streams}"
            out.write(json.dumps({
                "streamId": stream, "eventType": "ItemAdded", "eventId": f"00000000-0000-4000-8000-{n:012d}",
                "data": {"sku": f"sku-{n % 977}", "quantity": n % 5 + 1, "price": 9.99},
                "metadata": {"correlationId": f"c-{n // 10}"}, "created": "2026-03-01T10:00:00.1234567Z",
            }) + "\n")  # fmt: skip
    with messages.open("w") as out:
        for _, message in read_export(export.read_text()):
            out.write(json.dumps(message) + "\n")
    return export, messages


def run(*args: str) -> float:
    """Seconds the CLI took; it must succeed."""
    started = time.perf_counter()
    done = subprocess.run([JSPROJ, *args], capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"jsproj {' '.join(args[:2])} failed: {done.stderr[-2000:]}")
    return took


def fresh(admin: str, name: str) -> str:
    dsn = new_database(admin, name)
    subprocess.run([JSPROJ, "migrate", "--dsn", dsn], capture_output=True, check=True)
    return dsn


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("select count(*) from pge_events").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=1_000)  # jsproj append: one transaction, a lock a stream
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    cluster = bench_cluster("jsproj-bench-import-")
    try:
        with tempfile.TemporaryDirectory() as folder:
            export, messages = write_files(Path(folder), args.events, args.streams)
            log(f"files written: {args.events:,} events over {args.streams:,} streams")
            state: dict[str, str] = {}

            def imported() -> float:
                state["import"] = fresh(cluster.dsn, "imported")
                return args.events / run("import", "kurrentdb", str(export), "--dsn", state["import"], "--json")

            def appended() -> float:
                dsn = fresh(cluster.dsn, "appended")
                return args.events / run("append", str(messages), "--dsn", dsn, "--json")

            pairs: Pairs = alternate(imported, appended, args.pairs, what="import vs append")
            again = run("import", "kurrentdb", str(export), "--dsn", state["import"], "--json")
            stored = count(state["import"])
    finally:
        cluster.destroy()
    row = Row("32", f"import of {args.events:,} KurrentDB events", pairs, "jsproj append, same events", "events/s",
              target=(">=", 0.5), note="CLI, fresh database each")  # fmt: skip
    print(table([row]))
    print(f"\nthe same export imported again: {again:.1f} s, {stored:,} events stored (of {args.events:,}):"
          f" {'nothing appended' if stored == args.events else 'NOT idempotent'}")  # fmt: skip


if __name__ == "__main__":
    main()
