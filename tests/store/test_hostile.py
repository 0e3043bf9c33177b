"""Hostile input: every append and events file is refused with a specific error or stored faithfully.

Never a crash, a hang or a partial write: the store's counts are unchanged
after every refusal (sequence included), and what was accepted reads back equal.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clihelp import jsproj
from jsproj import errors
from jsproj.engine.events_file import parse
from jsproj.engine.projections import Projections
from jsproj.store.sync import EventStore
from test_store import counts, unchanged

from projections import PARTY_EVENTS

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# JSON values as Python has them, adversarial: lone surrogates, NUL, huge and negative numbers, deep-ish nesting.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None), max_size=40)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
IDS = st.text(min_size=0, max_size=300)


def same_json(stored: object, sent: object) -> bool:
    """Equal as JSON: numbers compared as the decimals they are written as (jsonb stores numbers as numeric)."""

    def exact(value: object) -> object:
        return json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)

    return exact(stored) == exact(sent)


@FUZZ
@given(payload=st.dictionaries(st.text(max_size=10).filter(lambda k: not k.startswith("$")), VALUES, max_size=5),
       stream_id=IDS, event_type=IDS)  # fmt: skip
def test_any_event_is_refused_cleanly_or_stored_faithfully(
    store: EventStore, dsn: str, payload: dict, stream_id: str, event_type: str
) -> None:
    message = {"id": stream_id, "type": "Fuzz", "data": {"$type": event_type, **payload}}
    before = counts(dsn)
    try:
        result = store.append(message)
    except errors.InputError as exc:
        assert exc.message, "an error says what is wrong"
        assert counts(dsn) == before, "a refused append changed the store"
        return
    stream = store.fetch_stream(result.stream_id)
    stored = stream.events[-1]
    assert stored.type == event_type and result.stream_id == stream_id
    assert same_json(stored.data, payload)


@FUZZ
@given(text=st.text(max_size=400) | st.binary(max_size=400).map(lambda b: b.decode("utf-8", "replace")))
def test_the_events_file_reader_never_crashes(text: str) -> None:
    try:
        parse(text)
    except errors.EventsFileError as exc:
        assert exc.message


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,  # nesting far past any parser's stack
        '{"id": "s", "type": "T", "data": ' + "[" * 50_000 + "]" * 50_000 + "}",
        '{"id": "s", "type": "T", "data": {"$type": "A", "n": 1e999}}',  # not a finite number
        '{"id": "s", "type": "T", "data": {"$type": "A", "n": NaN}}',
        '{"id": "s", "type": "T", "data": {"$type": "A"}}\n{"id": "s", "data": {"$type": "B"',  # truncated
        '\ufeff{"id": "s", "type": "T", "data": {"$type": "A", "text": "\\ud800"}}',  # a lone surrogate
        '{"id": "s", "type": "T", "data": {"$type": "A", "text": "nul \\u0000"}}',
        "\x00\x01\x02",
    ],
    ids=["deep-array", "deep-data", "1e999", "NaN", "truncated", "lone-surrogate", "nul", "binary"],
)
def test_adversarial_events_files_are_refused_with_one_line_and_write_nothing(dsn: str, tmp_path, text: str) -> None:
    (tmp_path / "events.jsonl").write_text(text, encoding="utf-8", errors="surrogatepass")
    before = counts(dsn)
    done = jsproj("append", str(tmp_path / "events.jsonl"), "--dsn", dsn)
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr[:500]
    assert counts(dsn) == before


def test_huge_values_are_stored_or_refused_whole(store: EventStore, dsn: str) -> None:
    big = "x" * (20 * 1024 * 1024)
    result = store.append({"id": "huge", "type": "T", "data": {"$type": "A", "text": big}})
    assert store.fetch_stream("huge").events[0].data["text"] == big
    many = [{"$type": "A", "n": n} for n in range(100_000)]
    result = store.append({"id": "many", "type": "T", "data": many})
    assert result.version == 100_000
    with unchanged(dsn), pytest.raises(errors.InputError):
        store.append({"id": "deep", "type": "T", "data": {"$type": "A", "deep": deep(20_000)}})


def deep(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


def test_numbers_past_2_to_the_53_are_kept_exactly(store: EventStore) -> None:
    values = {"$type": "A", "big": 2**53 + 1, "bigger": -(2**64) - 3, "tiny": 5e-324, "exact": 0.1}
    store.append({"id": "numbers", "type": "T", "data": values})
    stored = store.fetch_stream("numbers").events[0].data
    assert stored == {k: v for k, v in values.items() if k != "$type"}


@FUZZ
@given(name=st.text(min_size=1, max_size=80))
def test_stream_ids_are_values_never_sql(store: EventStore, dsn: str, name: str) -> None:
    hostile = f"x'); drop table pge_events; --{name}"
    try:
        store.append({"id": hostile, "type": "T", "data": {"$type": "A"}})
    except errors.InputError:
        pass  # e.g. a NUL byte: refused
    else:
        assert store.fetch_stream(hostile).id == hostile
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select to_regclass('pge_events')").fetchone()[0] == "pge_events"


@pytest.mark.slow
@FUZZ
@given(name=st.text(min_size=1, max_size=60))
def test_projection_names_are_identifiers_or_refused(name: str) -> None:
    source = f"projections.aggregate({json.dumps(name)}).by({{ A: function () {{}} }});"
    try:
        with Projections([{"file": "P.js", "source": source}]) as loaded:
            assert loaded.names == [name]
            assert name.isascii() and name.replace("_", "a").isalnum() and not name[0].isdigit()
    except errors.ProjectionError as exc:
        assert "is not a safe identifier" in exc.message


def test_a_message_with_duplicate_keys_keeps_the_last_as_every_json_reader_does(dsn: str, tmp_path) -> None:
    event_id = str(uuid.uuid4())
    text = f'{{"id": "dup", "type": "T", "data": {{"$type": "A", "$id": "{event_id}", "n": 1, "n": 2}}}}'
    (tmp_path / "dup.json").write_text(text)
    done = jsproj("append", str(tmp_path / "dup.json"), "--dsn", dsn, "--json")
    assert done.returncode == 0, done.stderr
    stream = json.loads(jsproj("stream", "dup", "--dsn", dsn, "--json").stdout)
    assert stream["events"][0]["event"] == {"$type": "A", "$id": event_id, "n": 2}


def test_a_stored_document_deeper_than_python_reads_is_a_clear_error_not_a_crash(store: EventStore, dsn: str) -> None:
    """Documents stay within 512 levels now; one stored before that limit (or by SQL) is reported, never a traceback."""
    from jsproj.projections.deploy import deploy
    from jsproj.projections.views import fetch_view

    deploy(store, [{"file": "Party.js", "source": PARTY_EVENTS}])
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into pge_projections_party (id, data) values ('deep', %s::jsonb), ('ok', '{\"n\": 1}')",
                     (json.dumps({"n": 1, "nested": "["}).replace('"["', "[" * 3000 + "]" * 3000),))  # fmt: skip
    assert fetch_view(store, "Party", "ok") == {"n": 1}
    with pytest.raises(
        errors.UnreadableDocumentError, match=r"^projection Party: document 'deep': stored JSON is nested"
    ):
        fetch_view(store, "Party", "deep")
    for command in (["view", "Party", "deep"], ["view", "Party"], ["export"]):
        done = jsproj(*command, "--dsn", dsn)
        assert done.returncode == 1
        assert done.stderr.startswith("error: projection Party: ") and len(done.stderr.splitlines()) == 1, done.stderr
    with pytest.raises(errors.UnreadableDocumentError):  # the Python engine loads it to apply an event to it
        store.append({"id": "deep", "type": "Quest", "data": {"$type": "Moved"}})
