"""Import of a KurrentDB export against jsproj's own append of the same events (issue 32: >= 0.5x), and a second
import of the same file (idempotent: nothing appended).

Both run in one Python process into a fresh database each time, in turns: ``import_kurrentdb(store, text)``
(reading KurrentDB's shape, looking for the ids the store holds already, a transaction per batch) against
``store.append_all(batch)`` of the very append messages the import makes of the export (one message an event:
its own id, metadata and time), cut in the same batches -- what a competent engineer would write to load them.
(One ``jsproj append`` of them all would be one transaction, and one transaction of a million appends to the
same thousand streams is slow: see docs/benchmarks.md.)

    python bench/kurrentdb_import.py [--events 1000000] [--streams 1000] [--pairs 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from harness import Pairs, Row, alternate, bench_cluster, log, new_database, table, timed
from jsproj.store.kurrentdb_import import Imported, batches, import_kurrentdb, read_export
from jsproj.store.sync import EventStore


def write_export(path: Path, events: int, streams: int) -> str:
    """An export of ``events`` events over ``streams`` streams, interleaved as $all would give them; its text."""
    with path.open("w") as out:
        for n in range(events):
            out.write(json.dumps({
                "streamId": f"cart-{n % streams}", "eventType": "ItemAdded",
                "eventId": f"00000000-0000-4000-8000-{n:012d}",
                "data": {"sku": f"sku-{n % 977}", "quantity": n % 5 + 1, "price": 9.99},
                "metadata": {"correlationId": f"c-{n // 10}"}, "created": "2026-03-01T10:00:00.1234567Z",
            }) + "\n")  # fmt: skip
    return path.read_text()


def fresh(admin: str, name: str) -> EventStore:
    store = EventStore(new_database(admin, name), max_size=2)
    store.migrate()
    return store


def count(store: EventStore) -> int:
    with store.connection() as conn:
        return int(conn.execute("select count(*) from pge_events").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=1_000)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    cluster = bench_cluster("jsproj-bench-import-")
    try:
        with tempfile.TemporaryDirectory() as folder:
            text = write_export(Path(folder) / "export.jsonl", args.events, args.streams)
            cut = [[m for _, m in batch] for batch in batches(read_export(text))]
            log(f"export written: {args.events:,} events over {args.streams:,} streams, {len(cut)} batches")
            kept: dict[str, EventStore] = {}

            def imported() -> float:
                store = kept["import"] = fresh(cluster.dsn, "imported")
                return args.events / timed(lambda: import_kurrentdb(store, text))

            def appended() -> float:
                with fresh(cluster.dsn, "appended") as store:
                    return args.events / timed(lambda: [store.append_all(batch) for batch in cut])

            pairs: Pairs = alternate(imported, appended, args.pairs, what="import vs append")
            store = kept["import"]
            outcome: dict[str, Imported] = {}
            again_took = timed(lambda: outcome.setdefault("again", import_kurrentdb(store, text)))
            stored = count(store)
            store.close()
    finally:
        cluster.destroy()
    row = Row("32", f"import of {args.events:,} KurrentDB events", pairs, "append_all, same events and batches",
              "events/s", target=(">=", 0.5), note="in-process, fresh database each")  # fmt: skip
    print(table([row]))
    again = outcome["again"]
    print(f"\nthe same export imported again: {again_took:.1f} s, {again.appended} appended, {again.skipped:,} skipped;"
          f" {stored:,} events stored (of {args.events:,})")  # fmt: skip


if __name__ == "__main__":
    main()
