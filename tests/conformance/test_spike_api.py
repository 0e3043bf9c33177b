"""The original spike's SQL API end to end through plain SQL, on every in-database engine (real PostgreSQL).

pge_append_event -> pge_fetch_stream -> pge_find_view with an assigned id,
appending to an existing stream, both id types, and pge_clean_all_events
between scenarios, as the spike's end-to-end tests do; and where jsproj is
stricter than the spike (docs/compat.md).
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from clihelp import QUEST
from jsproj.engine.projections import read_folder
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore

from conformance_hosts import LANGUAGES, engine_params, require_language


@pytest.fixture(params=engine_params(["plpython", *LANGUAGES]))
def session(request: pytest.FixtureRequest, dsn: str):
    if request.param in LANGUAGES:
        require_language(dsn, request.param)
    with EventStore(dsn, max_size=1) as store:
        deploy(store, read_folder(QUEST / "projections"), engine=request.param,
               lifecycles={"Traveled": "inline", "Visitors": "inline"})  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def call(session: psycopg.Connection, function: str, *args: object) -> object:
    placeholders = ", ".join(["%s"] * len(args))
    return session.execute(f"select {function}({placeholders})", args).fetchone()[0]


def started(location: str, event_id: str | None = None) -> dict:
    event = {"$type": "QuestStarted", "location": location, "members": ["Rand", "Mat"]}
    return {**event, "$id": event_id} if event_id else event


def test_append_with_an_assigned_id_then_fetch_the_stream_and_find_its_view(session: psycopg.Connection) -> None:
    event_id = str(uuid.uuid4())
    appended = call(
        session, "pge_append_event", json.dumps({"type": "Quest", "data": [started("Emond's Field", event_id)]})
    )
    assert set(appended) == {"id", "version"} and appended["version"] == 1
    stream = call(session, "pge_fetch_stream", appended["id"])
    assert stream == {"id": appended["id"], "type": "Quest", "version": 1,
                      "events": [{"$type": "QuestStarted", "$id": event_id, "location": "Emond's Field",
                                  "members": ["Rand", "Mat"]}]}  # fmt: skip
    raw = session.execute("select pge_fetch_stream(%s)::text", (appended["id"],)).fetchone()[0]
    assert raw.index('"$type"') < raw.index('"$id"') < raw.index('"location"'), "each event as appended"
    party = call(session, "pge_find_view", appended["id"], "Party")
    assert party == {"active": True, "traveled": 0, "location": "Emond's Field", "members": ["Rand", "Mat"]}


def test_append_to_an_existing_stream_and_read_an_aggregate(session: psycopg.Connection) -> None:
    call(session, "pge_append_event", json.dumps({"id": "q-1", "type": "Quest", "data": started("Emond's Field")}))
    second = call(session, "pge_append_event", json.dumps({"id": "q-1", "data": [
        {"$type": "TownReached", "location": "Baerlon", "traveled": 4},
        {"$type": "EndOfDay", "traveled": 13}]}))  # fmt: skip
    assert second == {"id": "q-1", "version": 3}
    assert [e["$type"] for e in call(session, "pge_fetch_stream", "q-1")["events"]] == [
        "QuestStarted", "TownReached", "EndOfDay"]  # fmt: skip
    assert call(session, "pge_find_view", "q-1", "Party")["traveled"] == 17
    assert call(session, "pge_find_view", "ignored", "Traveled") == {"traveled": 17, "days": 1}


def test_uuid_ids_work_as_the_spikes_did(session: psycopg.Connection) -> None:
    stream_id = uuid.uuid4()
    call(session, "pge_append_event", json.dumps({"id": str(stream_id), "type": "Quest", "data": started("Tar Valon")}))
    typed = session.execute("select pge_fetch_stream(%s::uuid), pge_find_view(%s::uuid, 'Party')",
                            (stream_id, stream_id)).fetchone()  # fmt: skip
    assert typed[0]["id"] == str(stream_id) and typed[1]["location"] == "Tar Valon"


def test_unknown_streams_and_documents_are_null_and_unknown_views_an_error(session: psycopg.Connection) -> None:
    assert call(session, "pge_fetch_stream", "nobody") is None
    assert call(session, "pge_find_view", "nobody", "Party") is None
    with pytest.raises(psycopg.Error, match="there is no deployed projection Nope") as caught:
        call(session, "pge_find_view", "x", "Nope")
    assert caught.value.sqlstate == "JP404"


def test_clean_all_empties_the_store_so_the_same_event_ids_can_be_appended_again(session: psycopg.Connection) -> None:
    event_id = str(uuid.uuid4())
    message = json.dumps({"id": "q-1", "type": "Quest", "data": [started("Emond's Field", event_id)]})
    call(session, "pge_append_event", message)
    with pytest.raises(psycopg.Error) as duplicate:  # jsproj's rule: an event id is stored once
        call(session, "pge_append_event", json.dumps({"id": "q-2", "type": "Quest", "data": [started("x", event_id)]}))
    assert duplicate.value.sqlstate == "JP400"
    session.execute("select pge_clean_all_events()")
    counts = session.execute("select (select count(*) from pge_streams), (select count(*) from pge_events), "
                             "(select count(*) from pge_aggregates), (select count(*) from pge_projections_party), "
                             "(select count(*) from pge_projections_arrival)").fetchone()  # fmt: skip
    assert counts == (0, 0, 0, 0, 0)
    assert call(session, "pge_append_event", message) == {"id": "q-1", "version": 1}
    assert call(session, "pge_find_view", "q-1", "Party")["location"] == "Emond's Field"
    assert session.execute("select count(*) from pge_projection_definitions").fetchone() == (5,), "definitions stay"


def test_a_bad_message_is_refused_and_writes_nothing(session: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as caught:
        call(session, "pge_append_event", json.dumps({"id": "q-1", "type": "Quest", "data": [{"location": "no type"}]}))
    assert caught.value.sqlstate == "JP400"
    assert session.execute("select count(*) from pge_events").fetchone() == (0,)


def test_the_python_engine_refuses_sql_appends_while_it_keeps_inline_projections(dsn: str) -> None:
    with EventStore(dsn, max_size=1) as store:
        deploy(store, read_folder(QUEST / "projections"), engine="python")
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.Error) as caught:
        call(conn, "pge_append_event", json.dumps({"id": "q-1", "type": "Quest", "data": started("Emond's Field")}))
    assert caught.value.sqlstate == "JP503"


def test_the_compat_docs_sql_runs_as_written(cluster, dsn: str, session: psycopg.Connection) -> None:
    import subprocess

    from test_docs import ROOT, blocks

    [script] = [body for lang, attrs, body in blocks(ROOT / "docs" / "compat.md") if attrs.get("psql") == "compat"]
    done = subprocess.run([str(cluster.bin_dir / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-", dsn],
                          input=script, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert json.loads(lines[1]) == {"id": "quest-1", "version": 1}
    assert json.loads(lines[2])["events"][0]["location"] == "Tar Valon"
    assert json.loads(lines[3])["location"] == "Tar Valon"
    assert session.execute("select count(*) from pge_events").fetchone() == (0,), "cleaned at the end"
