"""A small deterministic simulation for docs/scaling.md's Citus design: which cursor reads a sharded log exactly once.

    .venv/bin/python bench/citus_sim.py             # the table docs/scaling.md shows
    .venv/bin/python bench/citus_sim.py --seed 7    # another world

No PostgreSQL here: a model of what the gap-safe read depends on. Shards (one
per node) each have their own transaction ids (counters that start apart and
advance at their own pace, as nodes' do) and their own position sequence;
writers open transactions on the shard of a stream (one open transaction per
stream, as the stream's lock makes it), insert events, and commit or roll back
in random order; readers poll in between. Each shard answers a page as
jsproj's log does today (sql/functions/records.sql, src/jsproj/store/log.py):
committed events after a cursor, below the shard's snapshot xmin (its oldest
running transaction), in (transaction, position) order. The readers differ
only in their cursor:

* ``vector``: a cursor per shard, (epoch, transaction, position), the epoch
  raised when a shard moves to another node (the design's);
* ``vector, no epoch``: a cursor per shard, (transaction, position);
* ``one (tx, position) cursor``: today's cursor over every shard's pages merged;
* ``one global-sequence cursor``: positions from one cluster-wide sequence
  (a coordinator's), each shard's page below its own xmin, one position cursor.

Halfway, shard 0 moves to a node whose transaction counter is behind (its
running transactions finished first, as a move's cut-over waits for them).
At the end every transaction ends and the readers drain. The table counts,
for each reader, the committed events it delivered, skipped and delivered
twice, and whether each stream's events came in version order. Two ``vector``
readers visiting the shards in different orders then fold a cross-stream view
(documents by customer, from events of streams on every shard): a sum agrees,
"the last amount seen" does not.
"""

from __future__ import annotations

import argparse
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple


class Event(NamedTuple):
    epoch: int
    tx: int
    position: int  # the shard's own sequence
    global_position: int  # a cluster-wide sequence's, for the reader that assumes one
    shard: int
    stream: str
    version: int
    customer: int
    amount: int


@dataclass
class Shard:
    number: int
    next_xid: int
    next_position: int = 1
    epoch: int = 0
    running: dict[int, list[Event]] = field(default_factory=dict)
    log: list[Event] = field(default_factory=list)

    def xmin(self) -> int:
        """The oldest running transaction, else the next one: the gap-safe bound of a read on this node."""
        return min(self.running, default=self.next_xid)


Key = Callable[[Event], tuple[int, ...]]
EPOCH_TX: Key = lambda e: (e.epoch, e.tx, e.position)  # noqa: E731 -- the orders, side by side
TX: Key = lambda e: (e.tx, e.position)  # noqa: E731
GLOBAL: Key = lambda e: (e.global_position,)  # noqa: E731


def page(shard: Shard, after: tuple[int, ...], key: Key, limit: int) -> list[Event]:
    """A shard's gap-safe page after ``after`` in ``key`` order: committed, below its xmin, at most ``limit``.

    Read by epoch (``EPOCH_TX``), the events of an earlier epoch are all readable: the move that ended it waited
    for their transactions, and the node's xmin now counts on another node's counter, not theirs."""
    xmin, epochs = shard.xmin(), key is EPOCH_TX
    found = sorted((e for e in shard.log if key(e) > after and (e.tx < xmin or (epochs and e.epoch < shard.epoch))),
                   key=key)  # fmt: skip
    return found[:limit]


@dataclass
class VectorReader:
    """A cursor per shard: each shard read in its own gap-safe order, the shards visited in turn."""

    key: Key
    shards: int
    order: random.Random | None = None  # visits the shards in a shuffled order each poll (None: 0, 1, 2, ...)
    seen: list[Event] = field(default_factory=list)
    cursors: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def poll(self, world: World, limit: int) -> int:
        visits = list(range(self.shards))
        if self.order is not None:
            self.order.shuffle(visits)
        got = 0
        for number in visits:
            events = page(world.shards[number], self.cursors.get(number, (0,)), self.key, limit)
            if events:
                self.cursors[number] = self.key(events[-1])
                self.seen += events
                got += len(events)
        return got


@dataclass
class OneCursorReader:
    """One cursor: every shard's page after it, merged in ``key`` order, the first ``limit`` taken."""

    key: Key
    seen: list[Event] = field(default_factory=list)
    cursor: tuple[int, ...] = (0,)

    def poll(self, world: World, limit: int) -> int:
        merged = sorted((e for s in world.shards for e in page(s, self.cursor, self.key, limit)), key=self.key)
        events = merged[:limit]
        if events:
            self.cursor = self.key(events[-1])
            self.seen += events
        return len(events)


Reader = VectorReader | OneCursorReader


@dataclass
class World:
    """The shards, the streams' versions and locks, and a cluster-wide sequence (for one of the readers)."""

    rng: random.Random
    shards: list[Shard]
    streams: int
    versions: dict[str, int] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    global_position: int = 0

    def shard_of(self, stream: str) -> Shard:
        return self.shards[zlib.crc32(stream.encode()) % len(self.shards)]

    def begin(self) -> None:
        """A transaction on a free stream's shard: 1-3 events of that stream (positions taken at insert)."""
        free = [f"s{n}" for n in range(self.streams) if f"s{n}" not in self.locked]
        if not free:
            return
        stream = self.rng.choice(free)
        shard = self.shard_of(stream)
        xid, shard.next_xid = shard.next_xid, shard.next_xid + self.rng.choice((1, 1, 2, 5))  # others burn xids too
        version = self.versions.get(stream, 0)
        events = []
        for k in range(self.rng.randint(1, 3)):
            self.global_position += 1
            events.append(Event(shard.epoch, xid, shard.next_position, self.global_position, shard.number, stream,
                                version + k + 1, self.rng.randrange(8), self.rng.randint(1, 100)))  # fmt: skip
            shard.next_position += 1
        shard.running[xid] = events
        self.locked.add(stream)
        self.versions[stream] = version + len(events)

    def end(self, shard: Shard, xid: int, commit: bool) -> None:
        events = shard.running.pop(xid)
        self.locked.discard(events[0].stream)
        if commit:
            shard.log += events
        else:  # the versions are given again; the positions stay unused
            self.versions[events[0].stream] = events[0].version - 1

    def end_one(self) -> None:
        running = [(s, xid) for s in self.shards for xid in s.running]
        if running:
            shard, xid = self.rng.choice(running)
            self.end(shard, xid, commit=self.rng.random() > 0.05)

    def move(self, shard: Shard, lower_xid: int) -> None:
        """The shard moves to a node whose counter is behind: its transactions end first, then a new epoch."""
        for xid in list(shard.running):
            self.end(shard, xid, commit=True)
        shard.epoch, shard.next_xid = shard.epoch + 1, lower_xid


def run(seed: int = 1, shards: int = 4, streams: int = 40, steps: int = 3000, limit: int = 10) -> dict[str, object]:
    """Simulate, then drain: each reader's figures, and the cross-stream view of two ``vector`` readers."""
    rng = random.Random(seed)
    world = World(rng, [Shard(n, next_xid=1000 + 700 * n) for n in range(shards)], streams)
    readers: dict[str, Reader] = {
        "vector of per-shard (epoch, tx, position) cursors": VectorReader(EPOCH_TX, shards),
        "vector of per-shard (tx, position) cursors, no epoch": VectorReader(TX, shards),
        "one (tx, position) cursor over every shard": OneCursorReader(TX),
        "one cursor over a cluster-wide position sequence": OneCursorReader(GLOBAL),
    }
    shuffled = VectorReader(EPOCH_TX, shards, order=random.Random(seed + 1))
    every = [*readers.values(), shuffled]
    for step in range(steps):
        if step == steps // 2:
            world.move(world.shards[0], lower_xid=500)
        roll = rng.random()
        if roll < 0.45:
            world.begin()
        elif roll < 0.85:
            world.end_one()
        else:
            for reader in every:
                reader.poll(world, limit)
    for shard in world.shards:
        for xid in list(shard.running):
            world.end(shard, xid, commit=True)
    while sum(reader.poll(world, limit) for reader in every):
        pass
    committed = [e for s in world.shards for e in s.log]
    vector = next(iter(readers.values()))
    return {"committed": len(committed), "shards": shards,
            "readers": {name: figures(r.seen, committed) for name, r in readers.items()},
            "view": cross_stream_view(vector.seen, shuffled.seen)}  # fmt: skip


def figures(seen: list[Event], committed: list[Event]) -> dict[str, object]:
    unique = set(seen)
    last: dict[str, int] = {}
    in_order = True
    for event in seen:
        in_order &= event.version > last.get(event.stream, 0)
        last[event.stream] = event.version
    return {"delivered": len(unique), "skipped": len(set(committed) - unique), "twice": len(seen) - len(unique),
            "stream_order": in_order}  # fmt: skip


def cross_stream_view(one: list[Event], other: list[Event]) -> dict[str, int]:
    """Documents by customer folded by two readers of the same events in different shard orders: how many differ."""

    def fold(events: list[Event]) -> tuple[dict[int, int], dict[int, int]]:
        sums: dict[int, int] = {}
        lasts: dict[int, int] = {}
        for event in events:
            sums[event.customer] = sums.get(event.customer, 0) + event.amount
            lasts[event.customer] = event.amount
        return sums, lasts

    (sums_a, last_a), (sums_b, last_b) = fold(one), fold(other)
    return {"customers": len(sums_a), "sum_differs": sum(sums_a[c] != sums_b.get(c) for c in sums_a),
            "last_differs": sum(last_a[c] != last_b.get(c) for c in last_a)}  # fmt: skip


def table(result: dict[str, object]) -> str:
    lines = [f"{result['committed']:,} events committed on {result['shards']} shards; shard 0 moved halfway", "",
             "| reader | delivered | skipped | twice | each stream in order |", "|---|---:|---:|---:|---|"]  # fmt: skip
    readers = result["readers"]
    assert isinstance(readers, dict)
    for name, f in readers.items():
        order = "yes" if f["stream_order"] else "no"
        lines.append(f"| {name} | {f['delivered']:,} | {f['skipped']:,} | {f['twice']:,} | {order} |")
    view = result["view"]
    assert isinstance(view, dict)
    lines += ["", f"A cross-stream view of {view['customers']} customers folded by two vector readers visiting the "
              f"shards in different orders: the sum differs for {view['sum_differs']}, the last amount seen for "
              f"{view['last_differs']}."]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    print(table(run(parser.parse_args().seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
