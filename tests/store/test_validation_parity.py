"""Append messages are validated twice: by ``pge_append`` in SQL (the store) and by the engine's
``normalize`` in JavaScript (simulation, specs, the REPL's memory session, Node). Both must give the
same verdict on every message: the bad ones of tests/store/test_store.py and edge cases that are valid.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.store.sync import EventStore
from test_store import BAD_MESSAGES

EXISTING = {"existing": {"type": "T", "version": 1}}

#: Where the two validators word a refusal differently, what each says (everything else: the same text).
SQL_ONLY_WORDING = {
    # JavaScript gives a new stream an id first, then asks for its type like any other stream's
    'a new stream (no "id") needs a "type"': 'does not exist yet, so the message needs a "type"',
    # PostgreSQL refuses a NUL in text; the engine's value rule says why it cannot be stored
    "PostgreSQL refused the data": "cannot be stored",
    # NaN is not JSON: the engine never sees the message, its parser refuses the text
    "the message is not JSON": "not valid JSON",
}

VALID_EDGES = [
    {"id": "existing", "data": {"$type": "A"}},  # the type may be left out for an existing stream
    {"id": "existing", "type": "T", "expected_version": 1, "data": [{"$type": "A"}, {"$type": "B"}]},
    {"id": "fresh", "type": "T", "expected_version": 0, "data": {"$type": "A"}},
    {"id": "fresh", "type": "T", "expected_version": None, "metadata": None, "timestamp": None, "data": {"$type": "A"}},
    {"id": "x" * 255, "type": "y" * 255, "data": {"$type": "z" * 255}},
    {"id": "s", "type": "T", "data": {"$type": "A", "$id": str(uuid.uuid4()).upper()}},
    {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": "2026-01-05T08:00:00+05:30"},
    {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": "2024-02-29T23:59:59.999Z"},
    {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": "0050-06-01T00:00:00Z"},
    {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": "2026-01-01T00:00:00-15:59"},
    {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": "9999-12-31 23:59:59+14:00"},
    *[  # the first and last moments in UTC, reached through zones
        {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": t}
        for t in (
            "0001-01-01T00:00:00Z",
            "0001-01-01T15:00:00+15:00",
            "0001-01-01T14:00:30+14:00",
            "9999-12-31T23:59:59.999Z",
            "9999-12-31T08:59:59-15:00",
            "9999-12-31T22:59:59.999999-01:00",
            "9999-12-31T23:59:59.9999994Z",  # rounds down to the last microsecond
        )
    ],
    {"id": "fresh", "type": "T", "expected_version": 0.0, "data": {"$type": "A"}},
    {"id": "s", "type": "T", "data": {"$type": "A", "nested": {"deep": [1, 2.5, None, True, "ü"]}}},
    {"id": "s", "type": "T", "metadata": {"user": "ana", "tags": []}, "data": {"$type": "A"}},
]


@pytest.fixture(scope="module")
def engine() -> Iterator[Projections]:
    source = "projections.aggregate('Count').by({ $init: function () { return { n: 0 }; } });"
    with Projections([{"file": "Count.js", "source": source}]) as loaded:
        yield loaded


def javascript_verdict(engine: Projections, message: dict[str, Any]) -> errors.JsprojError | None:
    """The engine's refusal of ``message`` (after the stream ``existing``), or None if it accepts it."""
    try:
        text = json.dumps([message], allow_nan=True)  # NaN as Python writes it: not JSON, as for the store
        engine.normalize(text, now="2026-01-01T00:00:00Z", streams=EXISTING)
    except errors.JsprojError as exc:
        return exc
    return None


def sql_verdict(store: EventStore, message: dict[str, Any]) -> errors.JsprojError | None:
    """``pge_append``'s refusal of ``message`` (after the stream ``existing``), or None if it appends it."""
    store.append({"id": "existing", "type": "T", "data": {"$type": "A"}})
    try:
        store.append(message)
    except errors.JsprojError as exc:
        return exc
    return None


@pytest.mark.parametrize(("message", "problem"), BAD_MESSAGES, ids=[problem[:40] for _, problem in BAD_MESSAGES])
def test_both_validators_refuse_every_bad_message_for_the_same_reason(
    engine: Projections, store: EventStore, message: dict[str, Any], problem: str
) -> None:
    in_sql = sql_verdict(store, message)
    in_javascript = javascript_verdict(engine, message)
    assert isinstance(in_sql, errors.InvalidEventError), in_sql
    assert isinstance(in_javascript, errors.InputError), f"the engine accepted what the store refuses: {problem}"
    assert problem in str(in_sql)
    assert SQL_ONLY_WORDING.get(problem, problem) in str(in_javascript)


@pytest.mark.parametrize("message", VALID_EDGES, ids=[json.dumps(m)[:50] for m in VALID_EDGES])
def test_both_validators_accept_the_valid_edge_cases(
    engine: Projections, store: EventStore, message: dict[str, Any]
) -> None:
    assert sql_verdict(store, message) is None
    assert javascript_verdict(engine, message) is None


def test_the_wording_exceptions_are_cases_of_the_bad_message_list() -> None:
    assert set(SQL_ONLY_WORDING) <= {problem for _, problem in BAD_MESSAGES}
