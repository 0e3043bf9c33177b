"""Deterministic replays: the clock and Math.random() of projection code come from the event.

Appended, projected, rebuilt: the documents are the same bit for bit, in
every engine and lifecycle, and the same as a simulation of the stored
events. The PRNG is checked against an independent implementation here.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from clihelp import jsproj
from jsproj.engine.simulation import simulate
from jsproj.follow.daemon import Daemon
from jsproj.projections.deploy import deploy
from jsproj.projections.views import export_views
from jsproj.store.sync import EventStore

from conformance_hosts import CASES

CLOCK = CASES / "deterministic-clock"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MASK = 0xFFFFFFFF


def cyrb128(text: str) -> list[int]:
    """The seed hash of js/lib/clock.js, over UTF-16 code units, as Python integers."""
    h1, h2, h3, h4 = 1779033703, 3144134277, 1013904242, 2773480762
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        k = units[i] | (units[i + 1] << 8)
        h1 = h2 ^ ((h1 ^ k) * 597399067 & MASK)
        h2 = h3 ^ ((h2 ^ k) * 2869860233 & MASK)
        h3 = h4 ^ ((h3 ^ k) * 951274213 & MASK)
        h4 = h1 ^ ((h4 ^ k) * 2716044179 & MASK)
    h1 = (h3 ^ (h1 >> 18)) * 597399067 & MASK
    h2 = (h4 ^ (h2 >> 22)) * 2869860233 & MASK
    h3 = (h1 ^ (h3 >> 17)) * 951274213 & MASK
    h4 = (h2 ^ (h4 >> 19)) * 2716044179 & MASK
    h1 ^= h2 ^ h3 ^ h4
    return [h1, h2 ^ h1, h3 ^ h1, h4 ^ h1]


def sfc32(state: list[int]) -> int:
    t = (state[0] + state[1] + state[3]) & MASK
    state[3] = (state[3] + 1) & MASK
    state[0] = state[1] ^ (state[1] >> 9)
    state[1] = (state[2] + (state[2] << 3)) & MASK
    state[2] = (((state[2] << 21) | (state[2] >> 11)) + t) & MASK
    return t


def randoms(event_id: str, projection: str, count: int) -> list[float]:
    """What Math.random() gives projection ``projection`` on event ``event_id``: 53 bits from two draws."""
    state = cyrb128(event_id + "\u0000" + projection)
    return [((sfc32(state) >> 5) * 67108864 + (sfc32(state) >> 6)) / 2**53 for _ in range(count)]


def test_math_random_is_the_documented_prng_seeded_from_event_and_projection() -> None:
    expected = json.loads((CLOCK / "expected.json").read_text())
    first, second = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    assert expected["views"]["Clock"]["o1"]["random"] == randoms(first, "Clock", 2)
    assert expected["views"]["Clock"]["o2"]["random"] == randoms(second, "Clock", 2)
    assert expected["views"]["Receipt"]["r-1"]["random"] == randoms(first, "Receipt", 1)[0]
    assert expected["aggregates"]["Dice"]["rolls"] == [int(randoms(e, "Dice", 1)[0] * 6) + 1 for e in (first, second)]
    assert len({randoms(first, "Clock", 1)[0], randoms(first, "Dice", 1)[0], randoms(second, "Clock", 1)[0]}) == 3


def append_orders(store: EventStore, count: int) -> None:
    for n in range(count):
        events = [{"$type": "Placed", "$id": str(uuid.uuid4())} for _ in range(1 + n % 3)]
        store.append({"id": f"order-{n % 7}", "type": "Order", "data": events})


def messages_of(store: EventStore) -> list[dict]:
    """The stored events as append messages, with their ids and timestamps (what a simulation replays)."""
    return [
        {"id": e.stream_id, "type": e.stream_type, "timestamp": e.timestamp.isoformat(timespec="milliseconds"),
         "data": {"$type": e.type, "$id": e.event_id, **e.data}}
        for e in store.read_all(limit=10_000)
    ]  # fmt: skip


@pytest.mark.parametrize(("engine", "lifecycle"), [("python", "inline"), ("plpython", "inline"), ("python", "async")])
def test_a_rebuild_reproduces_the_first_run_bit_for_bit(
    store: EventStore, dsn: str, engine: str, lifecycle: str
) -> None:
    sources = [{"file": "Clock.js", "source": (CLOCK / "projections" / "Clock.js").read_text()}]
    names = ["Clock", "Dice", "Stamps", "Receipt"]
    deploy(store, sources, engine=engine, lifecycles=dict.fromkeys(names, lifecycle))
    append_orders(store, 20)
    Daemon(dsn).run(until_caught_up=True)
    first = export_views(store)
    for name in names:
        done = jsproj("rebuild", name, "--dsn", dsn)
        assert done.returncode == 0, done.stderr
    Daemon(dsn).run(until_caught_up=True)
    assert json.dumps(export_views(store), sort_keys=True) == json.dumps(first, sort_keys=True)
    assert first == simulate(CLOCK / "projections", messages_of(store))
    last = {e.stream_id: e.timestamp for e in store.read_all(limit=10_000)}
    assert {k: doc["now"] for k, doc in first["views"]["Clock"].items()} == {
        k: (t - EPOCH) // timedelta(milliseconds=1) for k, t in last.items()
    }, "each stream's document holds the time of its last event"
