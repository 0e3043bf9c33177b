"""Scenario 12 (issue 31): reading from a hot standby (docs/replicas.md) against reading from the primary.

A primary of its own (durable settings) and a standby made with ``pg_basebackup``, on this machine; a store
with a stream projection of 10,000 documents (the Python engine, inline). The rows:

- the median latency of ``views(name).get(id)`` for random ids, one reader: a store reading from the standby
  (no position to wait for) against one reading from the primary (target <= 1.2x);
- the median latency of an append followed by the read of its own document: a store in session mode reading
  from the standby (it waits for the replay) against the primary (for scale: what read-your-writes costs).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from harness import Row, alternate, log
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import temporary_cluster

PARTY = """projections.projectStream('Quest').named('Party').by({
  $init: function () { return { members: [] }; },
  Joined: function (s, e) { s.members.push(e.name); }
});"""


def median_ms(call: Callable[[int], object], count: int) -> float:
    """The median of ``count`` calls' latencies, in milliseconds."""
    times = []
    for n in range(count):
        started = time.perf_counter()
        call(n)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def run(quick: bool) -> list[Row]:
    streams, reads, writes, pairs = (2_000, 500, 100, 3) if quick else (10_000, 3_000, 400, 5)
    primary = temporary_cluster(prefix="jsproj-bench-primary-", shared_buffers="256MB")
    standby = temporary_cluster(prefix="jsproj-bench-standby-")
    primary.init(durable=True)
    primary.start()
    try:
        primary.base_backup_to(standby)
        standby.start()
        return _measure(primary.dsn, standby.dsn, streams, reads, writes, pairs)
    finally:
        standby.destroy()
        primary.destroy()


def _measure(primary: str, standby: str, streams: int, reads: int, writes: int, pairs: int) -> list[Row]:
    with EventStore(primary, max_size=1) as store:
        store.migrate()
        deploy(store, [{"file": "Party.js", "source": PARTY}])
        log(f"replicas: {streams:,} documents")
        for start in range(0, streams, 1000):
            store.append_all([{"id": f"quest-{n}", "type": "Quest", "data": {"$type": "Joined", "name": f"n{n}"}}
                              for n in range(start, min(streams, start + 1000))])  # fmt: skip
    pick = random.Random(7)
    ids = [f"quest-{pick.randrange(streams)}" for _ in range(reads)]
    with EventStore(primary, max_size=1) as on_primary, \
            EventStore(primary, max_size=1, replicas=[standby], read_your_writes=False) as eventual, \
            EventStore(primary, max_size=1, replicas=[standby], replica_wait=5.0) as session:  # fmt: skip
        assert session.fetch_stream("quest-0").version == 1  # (the standby has the load: the pools are open)
        log(f"replicas: {reads:,} reads of random documents, {pairs} pairs")
        gets = alternate(lambda: median_ms(lambda n: eventual.views("Party").get(ids[n]), reads),
                         lambda: median_ms(lambda n: on_primary.views("Party").get(ids[n]), reads), pairs,
                         what="reading a view from the replica")  # fmt: skip
        log(f"replicas: {writes:,} appends each read back, {pairs} pairs")
        own = alternate(lambda: median_ms(lambda n: append_then_read(session, f"own-r-{pick.random()}-{n}"), writes),
                        lambda: median_ms(lambda n: append_then_read(on_primary, f"own-p-{pick.random()}-{n}"), writes),
                        pairs, what="reading one's own write from the replica")  # fmt: skip
    return [
        Row("12 replicas", f"views(name).get(id) of {streams:,} documents, median latency", gets,
            "the same read from the primary", "ms", ("<=", 1.2),
            note=f"{pairs} pairs of {reads:,} reads of random ids, one reader; a standby made with pg_basebackup on "
                 "the same machine, read with no position to wait for"),
        Row("12 replicas", "an append, then the read of its own document (session mode), median latency", own,
            "the same from the primary", "ms",
            note=f"{pairs} pairs of {writes:,}; the read waits until the standby has replayed the append's commit "
                 "(polling every 2 ms): what read-your-writes from a replica costs"),
    ]  # fmt: skip


def append_then_read(store: EventStore, stream: str) -> None:
    store.append({"id": stream, "type": "Quest", "data": {"$type": "Joined", "name": "x"}})
    assert store.views("Party").get(stream) == {"members": ["x"]}
