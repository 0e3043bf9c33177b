"""The event store against a real PostgreSQL: append, bad input, migrations, fetching."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import psycopg
import pytest

from jsproj import errors
from jsproj.errors import SchemaMissingError, StoreUnavailableError, UnknownPositionError, UnknownStreamError
from jsproj.store import appending
from jsproj.store.identifiers import InvalidNameError
from jsproj.store.migrate import MigrationError, migrations
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import Cluster

from blocking import BlockingAsyncStore
from conftest import fresh_database
from waiting import wait_until

STORES = {"sync": EventStore, "asyncio": BlockingAsyncStore}


@pytest.fixture(autouse=True, params=sorted(STORES))
def store_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test of this module runs against both stores: ``EventStore`` here is the one of the run."""
    monkeypatch.setitem(globals(), "EventStore", STORES[request.param])
    return str(request.param)


@pytest.fixture
def store(dsn: str, store_kind: str) -> Iterator[EventStore]:
    with STORES[store_kind](dsn) as opened:
        yield opened  # type: ignore[misc]  # the asyncio store, blocking, stands in for the sync one


@pytest.fixture(scope="module")
def shared_stores(cluster: Cluster, template: str) -> Iterator[Callable[[str], EventStore]]:
    """A store of each kind shared by this module's tests that each check they leave it as they found it (the
    cases of refused input: a database each would be most of their cost)."""
    with ExitStack() as opened:
        made: dict[str, EventStore] = {}

        def get(kind: str) -> EventStore:
            if kind not in made:
                made[kind] = opened.enter_context(STORES[kind](opened.enter_context(fresh_database(cluster, template))))
            return made[kind]

        yield get


@pytest.fixture
def shared_store(shared_stores: Callable[[str], EventStore], store_kind: str) -> EventStore:
    return shared_stores(store_kind)


def counts(dsn: str) -> tuple[int, int, int]:
    """(streams, events, the next position the sequence would give without using it)."""
    with psycopg.connect(dsn) as conn:
        streams = conn.execute("select count(*) from pge_streams").fetchone()[0]
        events = conn.execute("select count(*) from pge_events").fetchone()[0]
        last = conn.execute("select last_value + is_called::int from pge_events_position_seq").fetchone()[0]
    return streams, events, last


@contextmanager
def unchanged(dsn: str) -> Iterator[None]:
    before = counts(dsn)
    yield
    assert counts(dsn) == before, "the store changed"


def test_append_a_message(store: EventStore) -> None:
    event_id = str(uuid.uuid4()).upper()
    result = store.append(
        {
            "id": "quest-1",
            "type": "Quest",
            "metadata": {"correlation_id": "c-1", "headers": {"user": "ana"}},
            "timestamp": "2026-01-05T08:00:00+01:00",
            "data": [
                {"$type": "QuestStarted", "$id": event_id, "location": "Emond's Field"},
                {"$type": "EndOfDay", "traveled": 13},
            ],
        }
    )
    assert (result.stream_id, result.version, result.positions) == ("quest-1", 2, [1, 2])
    stream = store.fetch_stream("quest-1")
    assert (stream.id, stream.type, stream.version) == ("quest-1", "Quest", 2)
    first, second = stream.events
    assert first.event == {"$type": "QuestStarted", "$id": event_id.lower(), "location": "Emond's Field"}
    assert first.data == {"location": "Emond's Field"}, "$type and $id are columns, not data"
    assert first.metadata == {"correlation_id": "c-1", "headers": {"user": "ana"}}
    assert first.to_dict()["timestamp"] == "2026-01-05T07:00:00.000Z"
    assert uuid.UUID(second.event_id)
    assert (second.version, second.position) == (2, 2)


def test_append_with_keywords_and_to_an_existing_stream(store: EventStore) -> None:
    store.append(stream_id="s", type="T", events=[{"$type": "A"}])
    result = store.append(stream_id="s", events={"$type": "B"}, expected_version=1)
    assert (result.version, result.positions) == (2, [2])
    assert [e.type for e in store.fetch_stream("s").events] == ["A", "B"]
    with pytest.raises(TypeError):
        store.append({"id": "s"}, stream_id="s")


def test_a_new_stream_without_an_id_gets_a_uuid(store: EventStore) -> None:
    result = store.append({"type": "Quest", "data": {"$type": "Started"}})
    assert uuid.UUID(result.stream_id)
    assert store.fetch_stream(result.stream_id).type == "Quest"


def test_wrong_expected_version_is_a_concurrency_error_that_burns_nothing(store: EventStore, dsn: str) -> None:
    store.append({"id": "s", "type": "T", "data": [{"$type": "A"}, {"$type": "B"}]})
    with unchanged(dsn), pytest.raises(errors.ConcurrencyError) as caught:
        store.append({"id": "s", "expected_version": 1, "data": {"$type": "C"}})
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("s", 1, 2)
    assert str(caught.value) == 'stream "s" is at version 2, not the expected version 1'
    with unchanged(dsn), pytest.raises(errors.ConcurrencyError):
        store.append({"id": "s", "expected_version": 0, "data": {"$type": "C"}})
    assert store.append({"id": "s", "expected_version": 2, "data": {"$type": "C"}}).positions == [3]
    assert store.append({"id": "new", "type": "T", "expected_version": 0, "data": {"$type": "A"}}).version == 1


BAD_MESSAGES = [
    ({"id": "s", "type": "T", "data": [{"$type": "A"}, {"location": "x"}]}, "event 2: Missing $type in event"),
    ({"id": "s", "type": "T", "data": [{"$type": ""}]}, "event 1: Missing $type in event"),
    ({"id": "s", "type": "T", "data": [{"$type": 5}]}, "event 1: Missing $type in event"),
    (
        {"id": "s", "type": "T", "data": [{"type": "A"}]},
        'event 1: Missing $type in event: every event needs a "$type" string (this one has "type": the event\'s type is '
        '"$type", with a dollar sign)',
    ),
    ({"id": "s", "type": "T", "data": [{"$type": "A"}, [1, 2]]}, "event 2: an event is a JSON object"),
    ({"id": "s", "type": "T", "data": ["A"]}, "event 1: an event is a JSON object"),
    ({"id": "s", "type": "T", "data": 5}, "an event is a JSON object"),
    ({"id": "s", "type": "T", "data": []}, '"data" holds no events'),
    (
        {"id": "s", "type": "T", "data": {"$type": "$init"}},
        'the event $type "$init" is reserved: types starting with $',
    ),
    (
        {"id": "s", "type": "T", "data": [{"$type": "A"}, {"$type": "$deleted"}]},
        "a $deleted event (a stream's tombstone) is alone in its message",
    ),
    ({"id": "s", "type": "T"}, 'the message has no "data"'),
    ({"id": "", "type": "T", "data": {"$type": "A"}}, "the stream id must not be empty"),
    ({"id": "x" * 256, "type": "T", "data": {"$type": "A"}}, "the stream id is longer than 255 characters"),
    ({"id": 7, "type": "T", "data": {"$type": "A"}}, "the stream id must be a string"),
    ({"id": "s", "type": "", "data": {"$type": "A"}}, "the stream type must not be empty"),
    ({"id": "fresh", "data": {"$type": "A"}}, 'stream "fresh" does not exist yet, so the message needs a "type"'),
    ({"data": {"$type": "A"}}, 'a new stream (no "id") needs a "type"'),
    (
        {"id": "s", "type": "T", "data": {"$type": "A", "$id": "not-a-uuid"}},
        'event 1: the event $id must be a UUID, not "not-a-uuid"',
    ),
    ({"id": "s", "type": "T", "data": {"$type": "A"}, "events": []}, 'unknown field "events"'),
    ({"id": "s", "type": "T", "data": {"$type": "A"}, "metadata": [1]}, "metadata must be an object"),
    (
        {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": "yesterday"},
        "timestamp must be an ISO 8601 date-time",
    ),
    ({"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": "2026-01-05T08:00:00"}, "with a zone"),
    (
        {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": "2026-02-30T08:00:00Z"},
        "timestamp must be an ISO 8601 date-time that exists",
    ),
    (
        {"id": "s", "type": "T", "data": {"$type": "A"}, "expected_version": -1},
        "expected_version must be a whole number >= 0",
    ),
    (
        {"id": "s", "type": "T", "data": {"$type": "A"}, "expected_version": 1.5},
        "expected_version must be a whole number >= 0",
    ),
    (
        {"id": "s", "type": "T", "data": {"$type": "A"}, "expected_version": "3"},
        "expected_version must be a whole number >= 0",
    ),
    (
        {"id": "s", "type": "T", "data": {"$type": "A"}, "expected_version": True},
        "expected_version must be a whole number >= 0",
    ),
    *[
        ({"id": "s", "type": "T", "data": {"$type": "A"}, "expected_version": big}, "expected_version must be a whole")
        for big in (1e300, 2**53, 2**63)  # past a bigint, or past what JavaScript holds exactly
    ],
    *[
        (
            {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": t},
            "timestamp must be an ISO 8601 date-time that exists",
        )
        for t in (
            "2026-13-01T00:00:00Z",
            "2026-01-01T25:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T23:60:00Z",
            "2026-01-01T23:59:60Z",
            "2026-01-01T00:00:00+16:00",
            "2026-01-01T00:00:00+01:60",
            "0000-01-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
        )
    ],
    *[
        (
            {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": t},
            "timestamp must be between 0001-01-01 and 9999-12-31 in UTC",
        )
        for t in (
            "9999-12-31T23:59:59.9999995Z",  # PostgreSQL keeps microseconds: these round up to year 10000
            "9999-12-31T22:59:59.99999951-01:00",
            "0001-01-01T00:00:00+15:00",
            "0001-01-01 14:59:59.999+15:00",
            "9999-12-31T23:59:59-15:00",
            "9999-12-31T09:00:00-15:00",
            "9999-12-31T23:00:00-01:00",
        )
    ],
    ({"id": "s", "type": ["T"], "data": {"$type": "A"}}, "the stream type must be a string"),
    (
        {"id": "s", "type": "T", "data": {"$type": "A"}, "timestamp": 1767600000},
        "timestamp must be an ISO 8601 date-time",
    ),
    ({"id": "s", "type": "T", "data": {"$type": "x" * 256}}, "event 1: the event $type is longer than 255 characters"),
    (
        {"id": "s", "type": "T", "data": [{"$type": "A"}, {"$type": "A", "$id": 5}]},
        "event 2: the event $id must be a UUID, not 5",
    ),
    ({"id": "s", "type": "T", "data": {"$type": "A", "text": "nul \x00 byte"}}, "PostgreSQL refused the data"),
    ({"id": "s", "type": "T", "data": {"$type": "A", "n": float("nan")}}, "the message is not JSON"),
]


@pytest.mark.parametrize(("message", "problem"), BAD_MESSAGES, ids=[problem[:40] for _, problem in BAD_MESSAGES])
def test_bad_messages_are_refused_and_change_nothing(shared_store: EventStore, message: dict, problem: str) -> None:
    store = shared_store
    store.append({"id": "existing", "type": "T", "data": {"$type": "A"}})
    with unchanged(store.dsn), pytest.raises(errors.InvalidEventError) as caught:
        store.append(message)
    assert problem in str(caught.value)


@pytest.mark.parametrize(("message", "problem"), BAD_MESSAGES, ids=[problem[:40] for _, problem in BAD_MESSAGES])
def test_a_bad_message_late_in_a_batch_is_refused_as_alone_and_uses_no_position(
    shared_store: EventStore, message: dict, problem: str
) -> None:
    store = shared_store
    store.append({"id": "existing", "type": "T", "data": {"$type": "A"}})
    with pytest.raises(errors.InvalidEventError) as alone:
        store.append(message)
    good = [{"id": "good", "type": "T", "data": [{"$type": "A"}] * 3}, {"id": "existing", "data": {"$type": "B"}}]
    following = counts(store.dsn)[2]
    with unchanged(store.dsn), pytest.raises(errors.InvalidEventError) as batched:
        store.append_all([*good, message])
    assert str(batched.value) == f"message 3: {alone.value}", "a batch checks each message by pge_append's rules"
    next_append = store.append({"id": "next", "type": "T", "data": {"$type": "A"}})
    assert next_append.positions == [following], "no position was used"


def test_a_batch_counts_its_earlier_messages_for_versions_and_stream_types(store: EventStore, dsn: str) -> None:
    results = store.append_all(
        [
            {"id": "q", "type": "Quest", "expected_version": 0, "data": [{"$type": "A"}, {"$type": "B"}]},
            {"id": "q", "expected_version": 2, "data": {"$type": "C"}},
            {"type": "Quest", "data": {"$type": "A"}},
            {"id": "q", "type": "Quest", "expected_version": 3, "data": {"$type": "D"}},
        ]
    )
    assert [(r.version, r.positions) for r in results] == [(2, [1, 2]), (3, [3]), (1, [4]), (4, [5])]
    event_id, stored = str(uuid.uuid4()), store.fetch_stream("q").events[0].event_id
    refused = [
        (
            [{"id": "q", "expected_version": 4, "data": {"$type": "E"}}, {"id": "q", "expected_version": 4, "data": {"$type": "F"}}],
            errors.ConcurrencyError,
            'message 2: stream "q" is at version 5, not the expected version 4',
        ),
        (
            [{"id": "n", "type": "New", "data": {"$type": "A"}}, {"id": "n", "type": "Old", "data": {"$type": "B"}}],
            errors.InvalidEventError,
            'message 2: stream "n" is a New stream, not Old',
        ),
        (
            [{"id": "q", "data": {"$type": "E"}}, {"id": "m", "data": {"$type": "A"}}],
            errors.InvalidEventError,
            'message 2: stream "m" does not exist yet, so the message needs a "type"',
        ),
        (
            [{"id": "a", "type": "T", "data": {"$type": "A", "$id": event_id}},
             {"id": "b", "type": "T", "data": {"$type": "A", "$id": event_id.upper()}}],
            errors.InvalidEventError,
            f"message 2: the event $id {event_id} is used by an earlier message too",
        ),
        (
            [{"id": "a", "type": "T", "data": {"$type": "A"}}, {"id": "b", "type": "T", "data": {"$type": "A", "$id": stored}}],
            errors.InvalidEventError,
            f"message 2: an event $id is already stored: {stored}",
        ),
    ]  # fmt: skip
    for messages, error, text in refused:
        with unchanged(dsn), pytest.raises(error) as caught:
            store.append_all(messages)
        assert str(caught.value) == text
        assert caught.value.info["messageNumber"] == 2
    assert isinstance(caught.value, errors.InvalidEventError)
    with pytest.raises(errors.ConcurrencyError) as conflict:
        store.append_all(
            [{"id": "q", "data": {"$type": "E"}}, {"id": "q", "expected_version": 1, "data": {"$type": "F"}}]
        )
    assert (conflict.value.stream_id, conflict.value.expected, conflict.value.actual) == ("q", 1, 5)


def test_a_batch_of_more_streams_than_the_lock_table_holds_is_refused_with_what_to_do(
    store: EventStore, dsn: str
) -> None:
    many = [{"id": f"s{n}", "type": "T", "data": {"$type": "A"}} for n in range(20_000)]
    with unchanged(dsn), pytest.raises(errors.BatchTooLargeError) as caught:
        store.append_all(many)
    said = str(caught.value)
    assert "the batch appends to 20000 streams" in said and "max_locks_per_transaction" in said
    assert len(store.append_all(many[:2000])) == 2000, "the locks were given back"


def test_a_batch_racing_another_writer_for_an_event_id_is_refused_naming_its_message(
    store: EventStore, dsn: str
) -> None:
    """The one refusal left to the insert itself: the other writer's event is not committed when the batch checks."""
    event_id = str(uuid.uuid4())
    batch = [
        {"id": "a", "type": "T", "data": {"$type": "A"}},
        {"id": "b", "type": "T", "data": {"$type": "B", "$id": event_id}},
    ]
    theirs = json.dumps({"id": "c", "type": "T", "data": {"$type": "C", "$id": event_id}})
    with psycopg.connect(dsn) as other, psycopg.connect(dsn, autocommit=True) as watch, ThreadPoolExecutor(1) as pool:
        other.execute("select pge_append(%s::jsonb)", (theirs,))  # in a transaction left open
        racing = pool.submit(store.append_all, batch, where=["line 1", "line 2"])
        wait_until(
            lambda: (
                watch.execute(
                    "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query like '%%pge_append%%'"
                ).fetchone()
                == (1,)
            )
        )  # the batch passed its checks and waits for the other writer's $id
        other.commit()
        with pytest.raises(errors.InvalidEventError) as caught:
            racing.result(timeout=60)
    assert str(caught.value).startswith("line 2: an event $id is already stored"), str(caught.value)
    assert store.streams(["a", "b", "c"]) == {"c": {"type": "T", "version": 1}}


def test_an_append_all_larger_than_a_batch_names_the_message_of_the_whole(
    store: EventStore, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(appending, "BATCH_BYTES", 300)  # ~4 messages a batch
    messages = [{"id": f"s{n}", "type": "T", "data": {"$type": "A", "n": n}} for n in range(12)]
    with pytest.raises(errors.ConcurrencyError) as caught:
        store.append_all([*messages[:9], {**messages[9], "expected_version": 3}, *messages[10:]])
    assert str(caught.value) == 'message 10: stream "s9" is at version 0, not the expected version 3'
    assert caught.value.info["messageNumber"] == 10
    assert counts(dsn)[:2] == (0, 0), "nothing is stored (the earlier batches' positions are not used again)"
    assert [r.positions for r in store.append_all(messages)][-1] != [], "the store goes on"


def test_a_followed_append_reports_its_progress_a_batch_at_a_time_in_one_transaction(
    store: EventStore, dsn: str
) -> None:
    """jsproj append's bar moves through a large file: a caller that follows the progress gets it per batch of
    about 1 MB (not once, at the end of one 32 MB batch), and the append is still all or nothing."""
    pad = "x" * 500
    messages = [{"id": f"s{n % 100}", "type": "T", "data": {"$type": "A", "pad": pad}} for n in range(5000)]  # 2.8 MB
    reported: list[int] = []
    store.append_all(messages, on_progress=reported.append)
    assert sum(reported) == 5000 and len(reported) >= 3 and max(reported) < 2500, reported
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(distinct tx_id) from pge_events").fetchone() == (1,), "one transaction"
    refused_last = [*messages, {"id": "s1", "type": "Other", "data": {"$type": "A"}}]
    before = counts(dsn)[:2]
    with pytest.raises(errors.InvalidEventError, match="message 5001"):
        store.append_all(refused_last, on_progress=reported.append)
    assert counts(dsn)[:2] == before, "nothing stored (the earlier batches' positions are not used again)"


def test_the_one_message_wrappers_refuse_a_batch(store: EventStore, dsn: str) -> None:
    batch = json.dumps([{"id": "s", "type": "T", "data": {"$type": "A"}}])
    for call in ("select pge_append_event(%s::json)", "select * from pge_append_records(%s::jsonb)"):
        with unchanged(dsn), psycopg.connect(dsn) as conn, pytest.raises(psycopg.Error) as caught:
            conn.execute(call, (batch,))
        assert caught.value.sqlstate == "JP400"
        assert str(caught.value.diag.message_primary).startswith("an append message is an object"), call


def test_batches_that_take_streams_in_opposite_orders_never_deadlock(store: EventStore, dsn: str) -> None:
    names = [f"s{n}" for n in range(8)]
    store.append_all([{"id": name, "type": "T", "data": {"$type": "A"}} for name in names])

    def writer(order: list[str]) -> None:
        with EventStore(dsn) as mine:
            for _ in range(40):
                mine.append_all([{"id": name, "data": {"$type": "B"}} for name in order])

    with ThreadPoolExecutor(2) as pool:  # a deadlock would be one writer's DeadlockDetected (40P01), raised here
        for done in [pool.submit(writer, names), pool.submit(writer, names[::-1])]:
            done.result(timeout=120)
    assert {name: store.fetch_stream(name).version for name in names} == dict.fromkeys(names, 81)


@pytest.mark.parametrize("check", ["pge_message_problem", "pge_message_events", "pge_event_problem"])
def test_the_checks_of_an_append_are_inlined_into_its_expressions(dsn: str, check: str) -> None:
    """An SQL function PostgreSQL cannot inline (a subquery, or a call that is not immutable) is planned again
    at every call: pge_append would pay for it in every transaction (~10 % of a one-event append)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("set plan_cache_mode = force_generic_plan")
        conn.execute(f"prepare checking(jsonb) as select {check}($1)")
        plan = "\n".join(row[0] for row in conn.execute("explain verbose execute checking('{}')"))
    assert "CASE" in plan and check not in plan, plan


def test_the_engine_record_is_inlined_into_every_read_of_records(dsn: str) -> None:
    """pge_event_record runs once per event of every page, rebuild and inline batch: a call PostgreSQL does not
    inline (a body more volatile than the function says) costs the SQL function machinery per event."""
    query = "select r.record from pge_records() r where r.position = 1"
    with psycopg.connect(dsn) as conn:
        plan = "\n".join(row[0] for row in conn.execute(f"explain verbose {query}"))
    assert "concat(" in plan and "pge_event_record" not in plan, plan


def test_the_first_and_last_moments_a_timestamp_may_be_read_back(store: EventStore) -> None:
    for stamp in ("0001-01-01T15:00:00+15:00", "9999-12-31T08:59:59.999999-15:00"):
        store.append({"id": "edges", "type": "T", "data": {"$type": "A"}, "timestamp": stamp})
    stream = store.fetch_stream("edges")  # a moment past them would be stored, then fail every read here
    assert [e.timestamp.isoformat() for e in stream.events] == [
        "0001-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59.999999+00:00",
    ]
    assert len(store.read_all(limit=10)) == 2


def test_a_different_stream_type_is_refused(store: EventStore, dsn: str) -> None:
    store.append({"id": "s", "type": "Quest", "data": {"$type": "A"}})
    with unchanged(dsn), pytest.raises(errors.InvalidEventError, match='stream "s" is a Quest stream, not Order'):
        store.append({"id": "s", "type": "Order", "data": {"$type": "A"}})


def test_duplicate_event_ids_are_refused(store: EventStore, dsn: str) -> None:
    event_id = str(uuid.uuid4())
    store.append({"id": "s", "type": "T", "data": {"$type": "A", "$id": event_id}})
    with unchanged(dsn), pytest.raises(errors.InvalidEventError, match=r"an event \$id is already stored"):
        store.append({"id": "t", "type": "T", "data": [{"$type": "A"}, {"$type": "B", "$id": event_id}]})
    other = str(uuid.uuid4())
    with (
        unchanged(dsn),
        pytest.raises(errors.InvalidEventError, match=r"the event \$id .* is used twice in the message"),
    ):
        store.append(
            {"id": "t", "type": "T", "data": [{"$type": "A", "$id": other}, {"$type": "B", "$id": other.upper()}]}
        )


def server_ms(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("select (extract(epoch from clock_timestamp()) * 1000)::bigint").fetchone()[0]


def test_the_ids_the_store_gives_are_uuid_v7_in_time_order(store: EventStore, dsn: str) -> None:
    given = str(uuid.uuid4())
    before = server_ms(dsn)
    created = store.append({"type": "Quest", "data": [{"$type": "A"}] * 1000})
    store.append({"id": "s", "type": "T", "data": [{"$type": "A"}, {"$type": "B", "$id": given}, {"$type": "C"}]})
    for n in range(3):
        store.append({"id": "s", "data": {"$type": "D", "n": n}})
    after = server_ms(dsn)
    events = store.read_all(limit=5000)
    stored = [uuid.UUID(e.event_id) for e in events if e.event_id != given]
    assert len(stored) == 1005 and [str(e.event_id) for e in events].count(given) == 1, "a given $id stays as given"
    for made in [*stored, uuid.UUID(created.stream_id)]:
        assert (made.version, made.variant) == (7, uuid.RFC_4122), made
        assert before - 1 <= made.int >> 80 <= after + 1, "the first 48 bits: the server's time in ms"
    assert stored == sorted(stored) and len(set(stored)) == len(stored), "increasing within and across messages"
    assert uuid.UUID(created.stream_id) < stored[0], "the new stream's id was made before its events' ids"


def test_a_given_id_equal_to_one_the_store_made_is_refused(store: EventStore, dsn: str) -> None:
    store.append({"id": "s", "type": "T", "data": [{"$type": "A"}, {"$type": "B"}]})
    made = store.fetch_stream("s").events[1].event_id
    with unchanged(dsn), pytest.raises(errors.InvalidEventError, match=r"an event \$id is already stored"):
        store.append({"id": "t", "type": "T", "data": {"$type": "A", "$id": made.upper()}})


def test_malformed_json_sent_to_pge_append_changes_nothing(store: EventStore, dsn: str) -> None:
    with unchanged(dsn), psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.InvalidTextRepresentation):
        conn.execute("select pge_append(%s::jsonb)", ('{"id": "s", "type": "T", "data": [{"$type": "A"',))


def test_pge_append_works_from_plain_sql(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            """select pge_append('{"id": "sql-1", "type": "T", "data": [{"$type": "A"}]}'::jsonb)"""
        ).fetchone()
        assert row[0] == {"streamId": "sql-1", "version": 1, "positions": [1]}
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(
                """select pge_append('{"id": "sql-1", "expected_version": 0, "data": {"$type": "A"}}'::jsonb)"""
            )
        assert caught.value.sqlstate == "JP409"
        assert json.loads(caught.value.diag.message_detail) == {"streamId": "sql-1", "expected": 0, "actual": 1}


def test_numbers_are_stored_exactly(store: EventStore) -> None:
    big = 2**63 + 12345
    store.append({"id": "n", "type": "T", "data": {"$type": "A", "big": big, "precise": 0.1}})
    assert store.fetch_stream("n").events[0].data == {"big": big, "precise": 0.1}


def test_fetch_stream_versions_and_unknown_streams(store: EventStore) -> None:
    store.append({"id": "s", "type": "T", "data": [{"$type": str(n)} for n in range(1, 6)]})
    assert [e.version for e in store.fetch_stream("s", from_version=2, to_version=4).events] == [2, 3, 4]
    assert [e.type for e in store.fetch_stream("s", from_version=5).events] == ["5"]
    assert store.fetch_stream("s", to_version=0).events == []
    with pytest.raises(UnknownStreamError, match="there is no stream 'nope'"):
        store.fetch_stream("nope")


def test_read_all_pages_in_order(store: EventStore) -> None:
    for n in range(5):
        store.append({"id": f"s{n % 2}", "type": "T", "data": [{"$type": f"E{n}"}]})
    first = store.read_all(limit=2)
    rest = store.read_all(after=first[-1].position)
    assert [e.type for e in first + rest] == ["E0", "E1", "E2", "E3", "E4"]
    assert store.read_all(after=rest[-1].position) == []
    with pytest.raises(UnknownPositionError):
        store.read_all(after=999)


def test_migrate_is_idempotent_and_refuses_changed_or_unknown_migrations(dsn: str) -> None:
    with EventStore(dsn) as store:
        assert store.migrate() == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert [r[0] for r in conn.execute("select version from pge_migrations order by 1")] == [
            m.version for m in migrations()
        ]
        conn.execute("update pge_migrations set checksum = 'edited' where version = %s", (migrations()[0].version,))
    with EventStore(dsn) as store, pytest.raises(MigrationError, match="was changed after it was applied"):
        store.migrate()
    with psycopg.connect(dsn, autocommit=True) as conn:
        first = migrations()[0]
        conn.execute("update pge_migrations set checksum = %s where version = %s", (first.checksum, first.version))
        conn.execute("insert into pge_migrations (version, name, checksum) values (9999, 'future', 'x')")
    with EventStore(dsn) as store, pytest.raises(MigrationError, match="made by a newer release"):
        store.migrate()


def test_a_store_in_its_own_schema(dsn: str) -> None:
    with EventStore(dsn, schema="events") as events_store:
        assert [m.version for m in events_store.migrate()] == [m.version for m in migrations()]
        events_store.append({"id": "s", "type": "T", "data": {"$type": "A"}})
    with EventStore(dsn) as public_store:
        with pytest.raises(UnknownStreamError):
            public_store.fetch_stream("s")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from events.pge_events").fetchone()[0] == 1


def test_unmigrated_schemas_and_bad_schema_names(dsn: str) -> None:
    with EventStore(dsn, schema="empty") as store, pytest.raises(SchemaMissingError, match="run `jsproj migrate`"):
        store.append({"id": "s", "type": "T", "data": {"$type": "A"}})
    with pytest.raises(InvalidNameError):
        EventStore(dsn, schema='x"; drop table pge_events; --')


def test_an_unreachable_database_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(StoreUnavailableError, match="cannot connect to PostgreSQL"):
        EventStore(f"host={tmp_path} port=5999 user=jsproj dbname=jsproj")


def test_a_later_migration_upgrades_an_existing_store_without_losing_data(dsn: str, tmp_path, monkeypatch) -> None:
    from jsproj.store import migrate as migrate_module

    with EventStore(dsn) as store:
        store.append({"id": "kept", "type": "T", "data": [{"$type": "A", "n": 1}, {"$type": "B"}]})
    release = tmp_path / "sql"
    shutil.copytree(migrate_module.sql_dir(), release)
    (release / "migrations" / "9000_add_a_column.sql").write_text("alter table pge_streams add column note text;\n")
    monkeypatch.setattr(migrate_module, "sql_dir", lambda: release)
    with EventStore(dsn) as store:
        assert [m.name for m in store.migrate()] == ["add_a_column"]
        assert store.migrate() == []
        kept = store.fetch_stream("kept")
        assert kept.events[0].event["n"] == 1
        assert kept.version == 2
        assert store.append({"id": "kept", "data": {"$type": "C"}}).version == 3


def test_appends_find_events_by_index_after_the_log_has_grown(store: EventStore, dsn: str) -> None:
    """A session that started on a small log must not keep a plan that scans pge_events (until an ANALYZE)."""
    with psycopg.connect(dsn) as conn:
        for _ in range(8):  # PL/pgSQL caches a generic plan after five calls: here while the table is tiny
            message = {"id": "early", "type": "T", "data": {"$type": "A", "$id": str(uuid.uuid4())}}
            conn.execute("select pge_append(%s)", (json.dumps(message),))
            conn.commit()
        store.append_all([{"id": f"s{n}", "type": "T", "data": [{"$type": "A"}] * 20} for n in range(1000)])
        late = {"id": "early", "data": [{"$type": "A", "$id": str(uuid.uuid4())}, {"$type": "B"}]}
        conn.execute("select pge_append(%s)", (json.dumps(late),))
        scans = dict(conn.execute("select relname, seq_scan from pg_stat_xact_user_tables").fetchall())
        conn.rollback()
    assert scans.get("pge_events", 0) == 0
