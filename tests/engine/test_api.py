"""The documented Python API: simulate, Projections (route/apply), errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import jsproj
from jsproj import errors
from jsproj.engine.projections import Projections, read_folder

from projections import counting

QUEST = Path(__file__).resolve().parents[2] / "src" / "jsproj" / "examples" / "quest"
COUNTER = [
    {
        "file": "Counter.js",
        "source": counting("Counter"),
    }
]


def test_simulate_a_folder_and_a_file() -> None:
    views = jsproj.simulate(QUEST / "projections", QUEST / "events.jsonl")
    assert views["views"]["Visitors"]["Moria"] == {"visits": 2, "quests": ["quest-2", "quest-1"]}
    assert views["aggregates"]["Traveled"] == {"traveled": 372, "days": 2}


def test_simulate_a_list_of_messages_with_loaded_projections() -> None:
    with Projections(COUNTER) as loaded:
        messages = [{"type": "T", "data": [{"$type": "A"}, {"$type": "B"}]}, {"type": "T", "data": {"$type": "C"}}]
        assert jsproj.simulate(loaded, messages)["aggregates"] == {"Counter": {"n": 3}}
        assert jsproj.simulate(loaded, "[]")["aggregates"] == {"Counter": None}


def test_simulate_checks_page_size() -> None:
    with pytest.raises(ValueError, match="page_size"):
        jsproj.simulate(QUEST / "projections", "[]", page_size=0)


def test_projections_describe_themselves() -> None:
    with Projections.from_folder(QUEST / "projections") as loaded:
        assert loaded.names == ["Arrival", "Journal", "Party", "Traveled", "Visitors"]
        party = loaded.info("Party")
        assert (party.kind, party.lifecycle, party.stream_type, party.file) == ("stream", "inline", "Quest", "Party.js")
        assert "TownReached" in party.event_types
        assert loaded.info("Journal").any_event
        assert loaded.info("Traveled").lifecycle == "async"
        assert loaded.info("Journal").lifecycle == "live"
        with pytest.raises(errors.UnknownProjectionError):
            loaded.info("Nope")


def test_route_then_apply_is_the_host_loop() -> None:
    with Projections.from_folder(QUEST / "projections") as loaded:
        records = loaded.normalize(
            '{"id": "q", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree", "traveled": 3}}'
        )
        routed = loaded.route(records)
        assert routed == {"Journal": ["q"], "Party": ["q"], "Traveled": ["Traveled"], "Visitors": ["Bree"]}
        documents = {name: dict.fromkeys(keys) for name, keys in routed.items()}
        documents["Traveled"]["Traveled"] = {"traveled": 10, "days": 1}
        result = loaded.apply(records, documents, only=["Party", "Traveled", "Arrival"])
        assert result.errors == []
        assert result.changes["Traveled"].upserts == {"Traveled": {"traveled": 13, "days": 1}}
        assert result.changes["Party"].upserts["q"]["location"] == "Bree"
        assert result.changes["Arrival"].kind == "event"
        assert set(result.changes) == {"Party", "Traveled", "Arrival"}


def test_apply_reports_handler_errors_per_projection() -> None:
    sources = [
        *COUNTER,
        {
            "file": "Bad.js",
            "source": "projections.aggregate('Bad').by({ B: function () { throw new Error('no B'); } });",
        },
    ]
    with Projections(sources) as loaded:
        records = loaded.normalize('{"type": "T", "data": [{"$type": "A"}, {"$type": "B"}]}')
        result = loaded.apply(records, {"Counter": {"Counter": None}, "Bad": {"Bad": None}})
    assert result.changes["Counter"].upserts == {"Counter": {"n": 2}}
    assert "Bad" not in result.changes
    [error] = result.errors
    assert isinstance(error, errors.ProjectionHandlerError)
    assert (error.projection, error.position, error.event_type) == ("Bad", 2, "B")


def test_errors_form_one_hierarchy() -> None:
    assert issubclass(errors.ProjectionSyntaxError, errors.ProjectionError)
    assert issubclass(errors.SandboxTimeoutError, errors.SandboxLimitError)
    assert issubclass(errors.InvalidEventError, errors.InputError)
    for cls in (errors.ProjectionError, errors.InputError, errors.ConcurrencyError, errors.SandboxError):
        assert issubclass(cls, errors.JsprojError)
    error = errors.from_info(
        {"kind": "ConcurrencyError", "message": "x\ny", "streamId": "s", "expected": 1, "actual": 2}
    )
    assert isinstance(error, errors.ConcurrencyError)
    assert (str(error), error.stream_id, error.expected, error.actual) == ("x", "s", 1, 2)
    assert isinstance(errors.from_info({"kind": "SomethingNew", "message": "m"}), errors.InternalError)


def test_read_folder_rejects_what_is_not_a_projection_folder(tmp_path: Path) -> None:
    with pytest.raises(errors.ProjectionError, match="no projection files"):
        read_folder(tmp_path)
    (tmp_path / "Latin1.js").write_bytes(b"// caf\xe9\n")
    with pytest.raises(errors.ProjectionSyntaxError, match="not UTF-8"):
        read_folder(tmp_path)


def test_connect_chooses_the_database_and_schema_like_the_cli(dsn: str, tmp_path: Path, monkeypatch) -> None:
    import asyncio

    import psycopg

    monkeypatch.chdir(tmp_path)
    (tmp_path / "jsproj.toml").write_text('[jsproj]\nschema = "from_toml"\n')
    monkeypatch.setenv("JSPROJ_DSN", dsn)
    with jsproj.connect() as store:  # the environment's DSN, jsproj.toml's schema, migrated
        assert (store.dsn, store.schema) == (dsn, "from_toml")
        store.append(stream_id="s", type="T", events={"$type": "A"})
    monkeypatch.setenv("JSPROJ_SCHEMA", "from_env")
    with jsproj.connect(schema="given") as store:  # the argument wins over both
        assert store.schema == "given"

    async def connect_async() -> str:
        store = await jsproj.connect_async()
        try:
            await store.append(stream_id="s", type="T", events={"$type": "A"})
            return store.schema
        finally:
            await store.close()

    assert asyncio.run(connect_async()) == "from_env"
    with psycopg.connect(dsn) as conn:
        counts = conn.execute(
            "select (select count(*) from from_toml.pge_events), (select count(*) from from_env.pge_events),"
            " (select count(*) from given.pge_events)"
        ).fetchone()
    assert counts == (1, 1, 0)
    with pytest.raises(errors.StoreUnavailableError):
        jsproj.connect(f"host={tmp_path} port=5999 dbname=none")


def test_the_top_level_names_are_the_documented_api() -> None:
    for name in jsproj.__all__:
        assert getattr(jsproj, name) is not None
    assert jsproj.example("quest").joinpath("events.jsonl").is_file()
    with pytest.raises(errors.InputError, match="no bundled example 'nope'"):
        jsproj.example("nope")
    with pytest.raises(AttributeError):
        jsproj.Nope  # noqa: B018 -- reading it is the test
