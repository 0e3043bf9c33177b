"""Writers racing each other and readers following the gap-safe read, on a real PostgreSQL."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.store.sync import EventStore

WRITERS = 8


def test_racing_writers_on_one_stream_exactly_one_wins_per_version(dsn: str) -> None:
    rounds = 25
    barrier = threading.Barrier(WRITERS)
    with EventStore(dsn, max_size=WRITERS) as store:
        store.append({"id": "hot", "type": "T", "data": {"$type": "Created"}})

        def writer(number: int) -> list[tuple[int, bool]]:
            outcomes = []
            for _ in range(rounds):
                version = store.streams(["hot"])["hot"]["version"]
                barrier.wait()  # everyone has read the same version
                try:
                    store.append({"id": "hot", "expected_version": version, "data": {"$type": "Won", "by": number}})
                    outcomes.append((version, True))
                except errors.ConcurrencyError as exc:
                    assert exc.expected == version
                    assert exc.actual > version
                    outcomes.append((version, False))
                barrier.wait()  # the round is over for everyone
            return outcomes

        with ThreadPoolExecutor(WRITERS) as pool:
            results = [outcome for outcomes in pool.map(writer, range(WRITERS)) for outcome in outcomes]
        stream = store.fetch_stream("hot")

    wins_per_version: dict[int, int] = {}
    for version, won in results:
        wins_per_version[version] = wins_per_version.get(version, 0) + won
    assert sorted(wins_per_version) == list(range(1, rounds + 1))
    assert set(wins_per_version.values()) == {1}, "exactly one writer wins each version"
    assert stream.version == rounds + 1
    assert [e.version for e in stream.events] == list(range(1, rounds + 2)), "versions have no gaps"
    assert [e.position for e in stream.events] == list(range(1, rounds + 2)), "losers burned no global position"


def test_a_reader_following_read_all_sees_every_event_once_in_order(dsn: str) -> None:
    streams = [f"s{n}" for n in range(20)]
    appends_per_writer = 60
    done = threading.Event()
    seen: list = []

    with EventStore(dsn, max_size=WRITERS + 2) as store:
        for stream_id in streams:
            store.append({"id": stream_id, "type": "T", "data": {"$type": "Created"}})

        def writer(number: int) -> int:
            rng = random.Random(number)
            written = 0
            for n in range(appends_per_writer):
                events = [{"$type": "E", "writer": number, "n": n, "k": k} for k in range(rng.randint(1, 3))]
                store.append({"id": rng.choice(streams), "data": events})
                written += len(events)
            return written

        def reader() -> None:
            after = 0
            while True:
                finished = done.is_set()
                page = store.read_all(after=after, limit=50)
                seen.extend(page)
                if page:
                    after = page[-1].position
                elif finished:
                    return

        follower = threading.Thread(target=reader)
        follower.start()
        with ThreadPoolExecutor(WRITERS) as pool:
            written = sum(pool.map(writer, range(WRITERS)))
        done.set()
        follower.join(timeout=120)
        assert not follower.is_alive()

    with psycopg.connect(dsn) as conn:
        stored = conn.execute("select position, tx_id::text::numeric from pge_events order by position").fetchall()
    assert len(stored) == written + len(streams)
    positions = [e.position for e in seen]
    assert len(positions) == len(set(positions)), "no event is seen twice"
    assert set(positions) == {p for p, _ in stored}, "every event is seen"
    tx_of = dict(stored)
    order = [(tx_of[p], p) for p in positions]
    assert order == sorted(order), "events come in (transaction, position) order"
    last_version: dict[str, int] = {}
    for event in seen:
        assert event.version > last_version.get(event.stream_id, 0), "a stream's events come in version order"
        last_version[event.stream_id] = event.version


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_reader_does_not_pass_a_transaction_that_is_still_open(dsn: str, outcome: str) -> None:
    with EventStore(dsn) as store:
        first = store.append({"id": "a", "type": "T", "data": {"$type": "Before"}}).positions[0]
        slow = psycopg.connect(dsn)  # T1: takes a position and stays open
        try:
            slow_position = slow.execute(
                "select pge_append(%s) -> 'positions' -> 0",
                (Jsonb({"id": "b", "type": "T", "data": {"$type": "Slow"}}),),
            ).fetchone()[0]
            fast_position = store.append({"id": "c", "type": "T", "data": {"$type": "Fast"}}).positions[0]  # T2 commits
            assert first < slow_position < fast_position

            assert [e.type for e in store.read_all()] == ["Before"], "the reader stops before the open transaction"
            assert store.read_all(after=first) == []

            if outcome == "commit":
                slow.commit()
                assert [e.type for e in store.read_all(after=first)] == ["Slow", "Fast"]
            else:
                slow.rollback()
                assert [e.type for e in store.read_all(after=first)] == ["Fast"]
        finally:
            slow.close()
