"""`jsproj import kurrentdb`: events exported from KurrentDB become a store's, once, in order, ready for the
KurrentDB projections of docs/from-kurrentdb.md (real PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from clihelp import jsproj
from jsproj import errors
from jsproj.projections.deploy import deploy
from jsproj.projections.views import fetch_view
from jsproj.store.kurrentdb_import import import_kurrentdb
from jsproj.store.sync import EventStore

CONFORMANCE = Path(__file__).parents[1] / "conformance" / "kurrentdb-documented"


def exported(events: list[dict]) -> list[dict]:
    """The tutorial's carts as KurrentDB's client reads them (its events with ids, metadata and times)."""
    lines, n = [], 0
    for message in events:
        for event in message["data"]:
            n += 1
            data = {k: v for k, v in event.items() if k != "$type"}
            lines.append({"streamId": message["id"], "eventType": event["$type"],
                          "eventId": f"00000000-0000-4000-8000-{n:012d}", "data": data,
                          "metadata": {"TimeStamp": f"2016-12-23T10:0{n}:00"},
                          "created": f"2016-12-23T10:0{n}:00.1234567Z"})  # fmt: skip
    return lines


def text(lines: list[dict]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.fixture
def carts() -> list[dict]:
    return exported(json.loads((CONFORMANCE / "events.json").read_text()))


def sources() -> list[dict[str, str]]:
    return [{"file": p.name, "source": p.read_text()} for p in sorted((CONFORMANCE / "projections").glob("*.js"))]


def test_an_export_imports_in_order_and_kurrentdbs_projections_give_its_documented_states(
    store: EventStore, carts: list[dict]
) -> None:
    deploy(store, sources())
    done = import_kurrentdb(store, text(carts))
    assert done.to_dict() == {"read": 7, "appended": 7, "skipped": 0}
    assert fetch_view(store, "xbox_one_s_counter") == {"xbox_one_s_counter": {"count": 3}}
    assert fetch_view(store, "shopping_cart_counter", "shoppingCart-b989fe21-9469-4017-8d71-9820b8dd1164") == {
        "count": 2
    }
    first = store.read_all(limit=1)[0]
    assert (first.event_id, first.stream_id, first.stream_type, first.version) == (
        "00000000-0000-4000-8000-000000000001", "shoppingCart-b989fe21-9469-4017-8d71-9820b8dd1164", "shoppingCart", 1
    )  # fmt: skip
    assert first.metadata == {"TimeStamp": "2016-12-23T10:01:00", "$created": "2016-12-23T10:01:00.1234567Z"}
    assert first.timestamp.isoformat() == "2016-12-23T10:01:00.123457+00:00"  # PostgreSQL keeps microseconds
    assert [e.event_id for e in store.read_all(limit=100)] == [line["eventId"] for line in carts], "the file's order"


def test_importing_again_appends_nothing_and_a_longer_export_only_what_is_new(
    store: EventStore, carts: list[dict]
) -> None:
    assert import_kurrentdb(store, text(carts[:4])).to_dict() == {"read": 4, "appended": 4, "skipped": 0}
    assert import_kurrentdb(store, text(carts[:4])).to_dict() == {"read": 4, "appended": 0, "skipped": 4}
    assert import_kurrentdb(store, text(carts)).to_dict() == {"read": 7, "appended": 3, "skipped": 4}
    versions = [(e.stream_id[-4:], e.version) for e in store.read_all(limit=100)]
    assert versions == [("1164", 1), ("1164", 2), ("1165", 1), ("1165", 2), ("1166", 1), ("1166", 2), ("1167", 1)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 3: not JSON"),
        ({"streamId": "s-1", "eventType": "T", "data": {}}, "line 3: missing eventId"),
        ({"streamId": "s-1", "eventType": "$>", "eventId": "00000000-0000-4000-8000-00000000ffff", "data": {}},
         "line 3: $> is a KurrentDB system event"),
        ({"streamId": "s-1", "eventType": "T", "eventId": "nope", "data": {}}, "line 3: eventId 'nope' is not a UUID"),
        ({"streamId": "s-1", "eventType": "T", "eventId": "00000000-0000-4000-8000-00000000ffff", "data": [1]},
         "line 3: data must be a JSON object"),
        ({"streamId": "s-1", "eventType": "T", "eventId": "00000000-0000-4000-8000-00000000ffff", "data": {},
          "colour": "red"}, "line 3: unknown field colour"),
    ],
)  # fmt: skip
def test_a_bad_line_is_named_and_nothing_of_the_file_is_written(
    store: EventStore, carts: list[dict], line: object, message: str
) -> None:
    bad = text(carts[:2]) + (line if isinstance(line, str) else json.dumps(line)) + "\n" + text(carts[2:])
    with pytest.raises(errors.InputError) as caught:
        import_kurrentdb(store, bad)
    assert caught.value.message.startswith(message), caught.value.message
    assert store.read_all(limit=10) == []


def test_the_cli_imports_once_and_says_what_it_did(dsn: str, carts: list[dict], tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    export.write_text(text(carts))
    first = jsproj("import", "kurrentdb", str(export), "--dsn", dsn, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"read": 7, "appended": 7, "skipped": 0}
    again = jsproj("import", "kurrentdb", str(export), "--dsn", dsn)
    assert again.returncode == 0, again.stderr
    assert "imported 0 events of 7 (7 already in the store)" in again.stdout
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from pge_events").fetchone() == (7,)


def test_an_import_stopped_halfway_is_finished_by_running_it_again(
    store: EventStore, carts: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction per batch (an export's streams would not fit one transaction's locks): what went in stays,
    and the same file run again appends the rest, each event once."""
    from jsproj.store import kurrentdb_import

    monkeypatch.setattr(kurrentdb_import, "BATCH_STREAMS", 2)  # carts 1164 and 1165, then 1166 and 1167
    store.append({"id": carts[-1]["streamId"], "type": "wishlist", "data": {"$type": "Opened"}})  # in the way
    with pytest.raises(errors.JsprojError):
        import_kurrentdb(store, text(carts))
    assert len(store.read_all(limit=100)) == 1 + 4, "the first batch went in, the second did not"
    with store.connection() as conn:  # the obstacle taken out of the way
        conn.execute("delete from pge_events where stream_id = %s", (carts[-1]["streamId"],))
        conn.execute("delete from pge_streams where id = %s", (carts[-1]["streamId"],))
        conn.commit()
    assert import_kurrentdb(store, text(carts)).to_dict() == {"read": 7, "appended": 3, "skipped": 4}
    assert [e.event_id for e in store.read_all(limit=100)] == [line["eventId"] for line in carts]
