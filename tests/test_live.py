"""Live aggregation: folding a stored stream on demand, in the Python V8 host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jsproj import errors, simulate
from jsproj.errors import UnknownStreamError
from jsproj.eventsfile import parse
from jsproj.live import aggregate
from jsproj.runtime.projections import Projections
from jsproj.store import EventStore

QUEST = Path(__file__).resolve().parents[1] / "src" / "jsproj" / "examples" / "quest"


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
