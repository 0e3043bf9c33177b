"""Reading the log by what happened: event types, stream types, append time, metadata; pages, gaps, indexes.

One store for the module, grown by SQL to enough events (in 2020) that the
planner uses the indexes of sql/migrations/0014_log_reads.sql; each test
appends its own events under names of its own and reads them back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.store.aio import AsyncEventStore
from jsproj.store.filters import MAX_TYPES, log_filter
from jsproj.store.reading import page_query
from jsproj.store.recorded import RecordedEvent
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import Cluster

from conftest import fresh_database

GROWN = 10_000  # events stored by SQL, in 2020: enough that a scan costs more than an index


@pytest.fixture(scope="module")
def grown(cluster: Cluster, template: str) -> Iterator[str]:
    """A store of ``GROWN`` events in 20-event streams, one a second from 2020-01-01, analyzed: mostly
    Deposited events of Account streams, with a rare event type (Closed, 1%) and stream type (Vault, 2%)."""
    with fresh_database(cluster, template) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                """insert into pge_streams (id, type)
                   select 'acct-' || s, case when s %% 50 = 0 then 'Vault' else 'Account' end
                   from generate_series(0, %s) s""",
                (GROWN // 20,),
            )
            conn.execute(
                """insert into pge_events (id, stream_id, stream_type, version, type, data, appended_at)
                   select gen_random_uuid(), 'acct-' || (n / 20), case when n / 20 %% 50 = 0 then 'Vault' else 'Account' end,
                          n %% 20 + 1, case when n %% 100 = 0 then 'Closed' else 'Deposited' end,
                          jsonb_build_object('n', n), timestamptz '2020-01-01Z' + n * interval '1 second'
                   from generate_series(0, %s - 1) n""",
                (GROWN,),
            )
            conn.execute("vacuum analyze pge_events")
            conn.execute("vacuum analyze pge_streams")
        yield dsn


@pytest.fixture(scope="module")
def store(grown: str) -> Iterator[EventStore]:
    with EventStore(grown) as opened:
        yield opened


def appended(store: EventStore) -> tuple[str, list[RecordedEvent]]:
    """Messages of a name of this test's own (streams of two types, four event types, metadata): the name,
    and the events as the unfiltered log returns them."""
    name = uuid.uuid4().hex[:8]
    messages = []
    for n in range(12):
        stream_type = f"Quest{name}" if n % 3 else f"Shop{name}"
        metadata = {"tenant": f"t{name}", "user": {"id": n % 2}} if n % 4 else None
        events = [
            {"$type": f"{kind}{name}", "n": n} for kind in (("Started", "Moved") if n % 2 else ("Moved", "Ended"))
        ]
        messages.append({"id": f"{stream_type}-{n % 5}", "type": stream_type, "data": events, "metadata": metadata})
    for message in messages:  # a transaction each: appended_at, its start, differs
        store.append(message)
    since = datetime(2021, 1, 1, tzinfo=UTC)
    return name, [e for e in store.read_all(limit=100_000, since=since) if e.stream_type.endswith(name)]


def every(store: EventStore, limit: int, **filters: Any) -> list[RecordedEvent]:
    """Every event the filters let through, read in pages of ``limit`` passing the last position back."""
    found, after = [], 0
    while page := store.read_all(after=after, limit=limit, **filters):
        found += page
        after = page[-1].position
    return found


def test_each_filter_and_their_combinations_read_the_events_that_match_in_the_log_order(store: EventStore) -> None:
    name, log = appended(store)
    moments = sorted({e.appended_at for e in log if e.appended_at})
    since, until = moments[3], moments[8]

    def expect(keep: Any) -> list[int]:
        return [e.position for e in log if keep(e)]

    cases = [
        ({"types": f"Moved{name}"}, lambda e: e.type == f"Moved{name}"),
        ({"types": [f"Ended{name}", f"Started{name}"]}, lambda e: e.type in (f"Ended{name}", f"Started{name}")),
        ({"stream_types": f"Shop{name}"}, lambda e: e.stream_type == f"Shop{name}"),
        ({"stream_types": [f"Quest{name}"], "types": [f"Ended{name}"]},
         lambda e: e.stream_type == f"Quest{name}" and e.type == f"Ended{name}"),
        ({"since": since, "until": until.isoformat()}, lambda e: since <= e.appended_at < until),
        ({"metadata": {"tenant": f"t{name}", "user": {"id": 1}}},
         lambda e: (e.metadata or {}).get("user") == {"id": 1} and e.metadata["tenant"] == f"t{name}"),
        ({"types": f"Moved{name}", "since": since, "metadata": {"tenant": f"t{name}"}},
         lambda e: e.type == f"Moved{name}" and e.appended_at >= since and e.metadata is not None),
    ]  # fmt: skip
    for filters, keep in cases:
        wanted = expect(keep)
        assert wanted, f"the case {filters} has events to find"  # and the grown log's events are left out
        for limit in (1, 3, 1000):
            assert [e.position for e in every(store, limit, **filters)] == wanted, (filters, limit)
    assert store.read_all(types=f"Nothing{name}") == []


def test_the_asyncio_store_reads_by_the_same_filters(store: EventStore) -> None:
    name, log = appended(store)

    async def read() -> list[RecordedEvent]:
        async with AsyncEventStore(store.dsn, max_size=1) as aio:
            first = await aio.read_all(limit=2, stream_types=f"Shop{name}", metadata={"tenant": f"t{name}"})
            return first + await aio.read_all(after=first[-1].position, stream_types=f"Shop{name}",
                                              metadata={"tenant": f"t{name}"})  # fmt: skip

    wanted = [e for e in log if e.stream_type == f"Shop{name}" and e.metadata is not None]
    assert asyncio.run(read()) == wanted


def test_a_filtered_reader_does_not_pass_a_transaction_that_is_still_open(store: EventStore, grown: str) -> None:
    kind = f"Slow{uuid.uuid4().hex[:8]}"
    first = store.append({"id": f"{kind}-a", "type": "Gap", "data": {"$type": kind}}).positions[0]
    with psycopg.connect(grown) as slow:  # takes a position and stays open while a later one commits
        slow.execute("select pge_append(%s)", (Jsonb({"id": f"{kind}-b", "type": "Gap", "data": {"$type": kind}}),))
        late = store.append({"id": f"{kind}-c", "type": "Gap", "data": {"$type": kind}}).positions[0]
        for filters in ({"types": kind}, {"stream_types": "Gap"}, {"types": kind, "stream_types": "Gap"}):
            assert [e.position for e in store.read_all(**filters)] == [first], filters
        slow.commit()
    for filters in ({"types": kind}, {"stream_types": "Gap"}):
        read = store.read_all(after=first, **filters)
        assert [e.stream_id for e in read] == [f"{kind}-b", f"{kind}-c"] and read[-1].position == late, filters


@pytest.mark.parametrize(
    ("filters", "option", "says"),
    [
        ({"types": []}, "types", "non-empty list"),
        ({"types": [""]}, "types", "1-255 characters"),
        ({"stream_types": 7}, "stream_types", "a name or a non-empty list"),
        ({"types": [f"T{n}" for n in range(MAX_TYPES + 1)]}, "types", f"at most {MAX_TYPES}"),
        ({"since": "yesterday"}, "since", "ISO 8601"),
        ({"until": "2026-01-05T08:00:00"}, "until", "with a zone"),
        ({"since": datetime(2026, 1, 5)}, "since", "with a zone"),
        ({"since": "2026-01-05T08:00:00Z", "until": "2026-01-05T07:00:00Z"}, "since", "must be before until"),
        ({"metadata": ["tenant"]}, "metadata", "JSON object"),
        ({"metadata": {"at": datetime.now(UTC)}}, "metadata", "not JSON"),
        ({"after": -1}, "after", "a position"),
        ({"after": "12"}, "after", "a position"),
        ({"limit": 0}, "limit", "1 or more"),
    ],
)
def test_a_bad_filter_is_refused_naming_its_option(
    store: EventStore, filters: dict[str, Any], option: str, says: str
) -> None:
    with pytest.raises(errors.LogFilterError) as caught:
        store.read_all(**filters)
    assert caught.value.option == option and says in str(caught.value)
    assert isinstance(caught.value, errors.InputError)


def test_after_a_position_that_is_no_event_s_is_an_unknown_position(store: EventStore) -> None:
    with pytest.raises(errors.UnknownPositionError):
        store.read_all(after=10**12, types="Deposited")


def plan(store: EventStore, **filters: Any) -> list[str]:
    """How the page query of these filters reads pge_events: each plan node on it, as "node type index"."""
    where = log_filter(**filters)
    params = {"tx": "0", "position": 0, "limit": 100, **where.params()}
    with store.connection() as conn:
        row = conn.execute(f"explain (format json) {page_query(where)}", params).fetchone()
    found, nodes = [], [row[0][0]["Plan"]] if row else []
    while nodes:
        node = nodes.pop()
        nodes += node.get("Plans", [])
        if node.get("Relation Name") == "pge_events" or "pge_events" in node.get("Index Name", ""):
            found.append(f"{node['Node Type']} {node.get('Index Name', '')}".strip())
    return found


def test_reads_by_type_stream_type_and_time_use_their_indexes_once_the_log_has_grown(store: EventStore) -> None:
    assert plan(store, types=["Closed", "Opened"]) == ["Index Scan pge_events_type_order"]
    assert plan(store, stream_types="Vault", since=datetime(2020, 1, 1, tzinfo=UTC)) == [
        "Index Scan pge_events_stream_type_order"
    ]
    start = datetime(2020, 1, 1, 1, tzinfo=UTC)
    assert plan(store, since=start, until=start + timedelta(minutes=5)) == [
        "Bitmap Heap Scan",
        "Bitmap Index Scan pge_events_appended_at",
    ]
    assert plan(store) == ["Index Scan pge_events_tx_order"]
