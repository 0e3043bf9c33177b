"""Live aggregation: folding a stored stream on demand, in the Python V8 host."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jsproj import errors, simulate
from jsproj.engine.events_file import parse
from jsproj.engine.projections import Projections
from jsproj.errors import UnknownStreamError
from jsproj.projections.live import aggregate
from jsproj.store.sync import EventStore

QUEST = Path(__file__).resolve().parents[2] / "src" / "jsproj" / "examples" / "quest"


@pytest.fixture
def quests(store: EventStore) -> Iterator[Projections]:
    store.append_all([m.body for m in parse((QUEST / "events.jsonl").read_text())])
    with Projections.from_folder(QUEST / "projections") as loaded:
        yield loaded


def test_live_aggregation_matches_simulation(store: EventStore, quests: Projections) -> None:
    simulated = simulate(quests, QUEST / "events.jsonl")
    for name in ("Party", "Journal"):
        for stream_id in ("quest-1", "quest-2"):
            assert aggregate(store, quests, name, stream_id) == simulated["views"][name][stream_id]


def test_live_aggregation_at_a_version(store: EventStore, quests: Projections) -> None:
    party = aggregate(store, quests, "Party", "quest-1", at_version=1)
    assert party == {"active": True, "traveled": 0, "location": "Emond's Field", "members": ["Rand", "Mat", "Perrin"]}
    assert aggregate(store, quests, "Party", "quest-1", at_version=0) is None
    assert aggregate(store, quests, "Journal", "quest-1", at_version=2) == {
        "entries": ["1. QuestStarted at Emond's Field", "2. MembersJoined"]
    }


def test_live_aggregation_refuses_what_it_cannot_fold(store: EventStore, quests: Projections) -> None:
    with pytest.raises(errors.ProjectionError, match="live aggregation folds one stream, and Traveled is an aggregate"):
        aggregate(store, quests, "Traveled", "quest-1")
    store.append({"id": "order-1", "type": "Order", "data": {"$type": "Placed"}})
    with pytest.raises(
        errors.ProjectionError, match="stream 'order-1' is a Order stream; projection Party folds Quest"
    ):
        aggregate(store, quests, "Party", "order-1")
    with pytest.raises(errors.UnknownProjectionError):
        aggregate(store, quests, "Nope", "quest-1")
    with pytest.raises(UnknownStreamError):
        aggregate(store, quests, "Party", "quest-9")


def test_live_aggregation_reports_handler_errors_and_deletions(store: EventStore) -> None:
    source = """projections.projectStream('Ticket').named('Ticket').by({
      Opened: function (s) { s.open = true; },
      Closed: function () { return projections.DELETE; },
      Broken: function () { throw new Error('cannot fold this'); }
    });"""
    store.append(
        {"id": "t1", "type": "Ticket", "data": [{"$type": "Opened"}, {"$type": "Closed"}, {"$type": "Broken"}]}
    )
    with Projections([{"file": "Ticket.js", "source": source}]) as loaded:
        assert aggregate(store, loaded, "Ticket", "t1", at_version=1) == {"open": True}
        assert aggregate(store, loaded, "Ticket", "t1", at_version=2) is None
        with pytest.raises(errors.ProjectionHandlerError, match="cannot fold this") as caught:
            aggregate(store, loaded, "Ticket", "t1")
    assert (caught.value.stream_id, caught.value.info["version"]) == ("t1", 3)


TICKET = """projections.projectStream('Ticket').named('Ticket').by({
  $init: function () { return { opened: 0, notes: [] }; },
  Opened: function (s, e) { s.opened += 1; s.notes.push('opened ' + e.n); },
  Noted: function (s, e) { s.notes.push(e.n + ' at ' + new Date().getTime() + ' ' + Math.random()); },
  Closed: function () { return projections.DELETE; },
  Broken: function () { throw new Error('cannot fold this'); }
});"""
# Deleted mid-stream (at versions 4 and 9), made again by later events, deleted last (at 13).
TICKET_TYPES = (
    "Opened Noted Noted Closed Noted Opened Noted Noted Closed Opened Noted Noted Closed Opened Noted Noted Noted"
)
TICKET_EVENTS = [{"$type": t, "n": n} for n, t in enumerate(TICKET_TYPES.split())]


def ticket_messages(events: int) -> list[dict[str, Any]]:
    """The first ``events`` Ticket events, a message each (ids and times fixed: the handlers read both)."""
    return [
        {"id": "t1", "type": "Ticket", "timestamp": f"2026-01-0{1 + v // 5}T10:00:00.123Z",
         "data": [{**event, "$id": str(uuid.UUID(int=v + 1))}]}
        for v, event in enumerate(TICKET_EVENTS[:events])
    ]  # fmt: skip


@pytest.fixture
def tickets(store: EventStore) -> Iterator[Projections]:
    messages = ticket_messages(len(TICKET_EVENTS))
    for start in range(0, len(messages), 5):  # a message of up to 5 events, one timestamp each
        group = messages[start : start + 5]
        store.append({**group[0], "data": [m["data"][0] for m in group]})
    with Projections([{"file": "Ticket.js", "source": TICKET}]) as loaded:
        yield loaded


def test_paged_folds_match_one_fold_and_the_simulation(store: EventStore, tickets: Projections) -> None:
    for version in range(len(TICKET_EVENTS) + 1):
        whole = aggregate(store, tickets, "Ticket", "t1", at_version=version, page_size=1000)
        assert whole == simulate(tickets, ticket_messages(version))["views"]["Ticket"].get("t1"), version
        for page_size in (1, 2, 3, 4, 5, 8):
            assert aggregate(store, tickets, "Ticket", "t1", at_version=version, page_size=page_size) == whole
    assert aggregate(store, tickets, "Ticket", "t1", at_version=13, page_size=2) is None
    assert aggregate(store, tickets, "Ticket", "t1", page_size=3)["notes"][0] == "opened 13"


def test_paged_quest_folds_match_the_simulation(store: EventStore, quests: Projections) -> None:
    simulated = simulate(quests, QUEST / "events.jsonl")
    for page_size in (1, 2, 3):
        for stream_id in ("quest-1", "quest-2"):
            expected = simulated["views"]["Journal"][stream_id]
            assert aggregate(store, quests, "Journal", stream_id, page_size=page_size) == expected


def test_paged_folds_name_the_failing_event(store: EventStore, tickets: Projections) -> None:
    store.append({"id": "t1", "data": [{"$type": "Noted", "n": 99}, {"$type": "Broken"}, {"$type": "Noted"}]})
    assert aggregate(store, tickets, "Ticket", "t1", at_version=18, page_size=4)["notes"][-1].startswith("99 at")
    with pytest.raises(errors.ProjectionHandlerError, match="cannot fold this") as caught:
        aggregate(store, tickets, "Ticket", "t1", page_size=4)
    assert (caught.value.stream_id, caught.value.info["version"]) == ("t1", 19)
    with pytest.raises(errors.InputError, match="page size must be >= 1"):
        aggregate(store, tickets, "Ticket", "t1", page_size=0)
    # the failed fold gave its connection back: the pool is not drained by failures
    for _ in range(store.max_size + 1):
        with pytest.raises(errors.ProjectionHandlerError):
            aggregate(store, tickets, "Ticket", "t1", page_size=4)


BALANCE = """projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, deposits: 0, withdrawals: 0 }; },
  Deposited: function (state, evt) { state.balance += evt.amount; state.deposits += 1; },
  Withdrawn: function (state, evt) { state.balance -= evt.amount; state.withdrawals += 1; }
});"""


def generate_account(dsn: str, stream_id: str, events: int) -> dict[str, int]:
    """A stream of ``events`` written straight into the tables (fast), and the Balance it folds to."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into pge_streams (id, type) values (%s, 'Account')", (stream_id,))
        conn.execute(
            """insert into pge_events (id, stream_id, stream_type, version, type, data)
               select gen_random_uuid(), %s, 'Account', g, case when g %% 5 = 0 then 'Withdrawn' else 'Deposited' end,
                      jsonb_build_object('amount', g %% 97 + 1, 'note', 'transfer ' || g)
               from generate_series(1, %s) g""",
            (stream_id, events),
        )
    withdrawn = sum(v % 97 + 1 for v in range(5, events + 1, 5))
    return {
        "balance": sum(v % 97 + 1 for v in range(1, events + 1)) - 2 * withdrawn,
        "deposits": events - events // 5,
        "withdrawals": events // 5,
    }


@pytest.mark.slow  # a long stream, to see the memory stay flat
def test_the_worker_memory_does_not_grow_with_the_stream(store: EventStore, dsn: str) -> None:
    # Under a 16 MB limit a stream of 30,000 events is too much for one call, and three times that
    # stream folds in pages of 1,000 in the same limit: the fold's memory is a page's.
    small, large = generate_account(dsn, "a-small", 30_000), generate_account(dsn, "a-large", 90_000)
    with Projections([{"file": "Balance.js", "source": BALANCE}], memory_limit=16 * 1024 * 1024) as loaded:
        with pytest.raises(errors.SandboxMemoryError):
            aggregate(store, loaded, "Balance", "a-small", page_size=30_000)
        assert aggregate(store, loaded, "Balance", "a-small", page_size=1_000) == small
        assert aggregate(store, loaded, "Balance", "a-large", page_size=1_000) == large


@pytest.mark.slow
def test_a_long_stream_folds_page_by_page(store: EventStore, dsn: str) -> None:
    """40,000 events: twenty pages of the default size, and a fold stopped one event short of the end."""
    events = 40_000
    expected = generate_account(dsn, "a-big", events)
    with Projections([{"file": "Balance.js", "source": BALANCE}]) as loaded:
        assert aggregate(store, loaded, "Balance", "a-big") == expected
        deposits = aggregate(store, loaded, "Balance", "a-big", at_version=events - 1)["deposits"]
        assert deposits == (events - 1) - (events - 1) // 5
