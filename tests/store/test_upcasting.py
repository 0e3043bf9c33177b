"""Upcasters in a real store: deployed with the projections, reproduced by a rebuild, rebuilding what a change
of one reaches at deploy (inline now, async built beside and swapped), dead-lettered by the daemon like a
handler's failure, and no more than a handler in an in-database engine (docs/dsl.md#upcasters).
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from jsproj import errors
from jsproj.engine.projections import read_folder
from jsproj.follow.daemon import Daemon
from jsproj.projections.deploy import deploy
from jsproj.projections.operations import list_dead_letters, rebuild
from jsproj.projections.views import export_views
from jsproj.store.sync import EventStore

from conformance_hosts import require_language
from projections import HOSTILE_UPCASTERS, UPCASTER_REACHES_NOTHING

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "conformance" / "upcasting"
EXPECTED = json.loads((CASE / "expected.json").read_text("utf-8"))
# One projection that no upcaster reaches: it handles TownReached only.
TOWNS = {
    "file": "Towns.js",
    "source": "projections.aggregate('Towns').by({ TownReached: function (s) { s.n = (s.n || 0) + 1; } });",
}
LIFECYCLES = {"Party": "inline", "Starts": "inline", "Towns": "inline", "Leaders": "async", "QuestsByTown": "async"}


def history(store: EventStore) -> None:
    """The conformance case's log: three shapes of QuestStarted, and its old name."""
    store.append_all([json.loads(line) for line in (CASE / "events.jsonl").read_text("utf-8").splitlines()])


def caught_up(dsn: str) -> None:
    assert Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)


def with_upcasters(source: str) -> list[dict[str, str]]:
    return [*(s if s["file"] != "upcasters.js" else {**s, "source": source} for s in read_folder(CASE / "projections")),
            TOWNS]  # fmt: skip


def test_deployed_upcasters_give_the_views_of_the_newest_shape_and_a_rebuild_reproduces_them(
    store: EventStore, dsn: str
) -> None:
    sources = with_upcasters((CASE / "projections" / "upcasters.js").read_text("utf-8"))
    deploy(store, sources, lifecycles=LIFECYCLES)
    history(store)
    caught_up(dsn)
    views = export_views(store)
    assert {k: v for k, v in views["aggregates"].items() if k != "Towns"} == EXPECTED["aggregates"]
    assert views["views"] == EXPECTED["views"]
    for name in LIFECYCLES:
        rebuild(store, name)
    assert export_views(store) == views
    with psycopg.connect(dsn) as conn:  # the stored log never changes
        assert conn.execute("select type, data from pge_events where position = 1").fetchone() == (
            "QuestBegun", {"hero": "Rand", "town": "Emond's Field"})  # fmt: skip


def test_deploying_a_changed_upcaster_rebuilds_the_projections_whose_input_it_changes(
    store: EventStore, dsn: str
) -> None:
    first = (CASE / "projections" / "upcasters.js").read_text("utf-8")
    deploy(store, with_upcasters(first), lifecycles=LIFECYCLES)
    history(store)
    caught_up(dsn)
    captains = first.replace("role: 'leader'", "role: 'captain'").replace(
        "evt.hero.name, role", "evt.hero.name + '!', role"
    )
    plan = deploy(store, with_upcasters(captains), lifecycles=LIFECYCLES, dry_run=True)
    report = deploy(store, with_upcasters(captains), lifecycles=LIFECYCLES)
    for done in (plan, report):
        assert (done.changed, done.unchanged) == (["Party", "Leaders", "QuestsByTown", "Starts"], ["Towns"])
        assert (done.rebuild, done.building) == (["Party", "Starts"], ["Leaders", "QuestsByTown"])
        assert done.upcaster_files == {"added": [], "changed": ["upcasters.js"], "unchanged": [], "removed": []}
    assert report.rebuilt == {"Party": 6, "Starts": 6}, "inline: rebuilt at deploy"
    assert export_views(store)["aggregates"]["Leaders"] == EXPECTED["aggregates"]["Leaders"], "async: old until swapped"
    caught_up(dsn)
    views = export_views(store)
    assert views["aggregates"]["Leaders"] == {"leaders": ["Rand!", "Egwene!", "Mat!", "Perrin"]}
    assert views["views"]["Party"]["quest-1"]["members"] == ["Rand!"]
    # an upcaster of a type only a stream projection may see (it sees every event of its streams)
    ended = {"file": "ended.js", "source": "projections.upcast('QuestEnded').from(1).by(function (e) { return e; });"}
    report = deploy(store, [*with_upcasters(captains), ended], lifecycles=LIFECYCLES)
    assert (report.changed, report.upcaster_files["added"]) == (["Party"], ["ended.js"])
    assert deploy(store, [*with_upcasters(captains), ended], lifecycles=LIFECYCLES).changed == []


def test_an_upcaster_failing_fails_an_inline_append_and_is_dead_lettered_by_the_daemon(
    store: EventStore, dsn: str
) -> None:
    failing = (
        (CASE / "projections" / "upcasters.js")
        .read_text("utf-8")
        .replace(
            "evt.hero = { name: evt.hero };",
            "if (evt.hero === 'Egwene') throw new Error('no such hero'); evt.hero = { name: evt.hero };",
        )
    )
    deploy(store, with_upcasters(failing), lifecycles=LIFECYCLES)
    with pytest.raises(
        errors.UpcastError,
        match=r"upcaster QuestStarted from version 1 \(upcasters\.js\) failed on "
        r"QuestStarted event \S+ for projection Party \(stream quest-2, version 1, position 3\): Error: no such hero",
    ):
        history(store)  # fmt: skip
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from pge_events").fetchone() == (0,), "inline: the append is refused"
    lifecycles = dict.fromkeys(LIFECYCLES, "async")
    deploy(store, with_upcasters(failing), lifecycles=lifecycles, on_error={"Leaders": "dead-letter"})
    history(store)
    with pytest.raises(errors.ProjectionStoppedError, match="Party, QuestsByTown, Starts stopped on an event"):
        caught_up(dsn)
    [letter] = list_dead_letters(store, "Leaders")
    egwene = store.fetch_stream("quest-2").events[0].position  # (the refused append used positions up)
    assert (letter.position, letter.event_type, letter.error["kind"], letter.error["upcaster"]) == (
        egwene, "QuestStarted", "UpcastError", "QuestStarted from version 1")  # fmt: skip
    assert export_views(store)["aggregates"]["Leaders"] == {"leaders": ["Rand", "Mat", "Perrin"]}
    with psycopg.connect(dsn) as conn:  # the others have no policy: each stopped on that event
        stopped = conn.execute("select name, status, error ->> 'kind', (error ->> 'position')::int "
                               "from pge_projection_progress where name <> 'Leaders' order by name").fetchall()  # fmt: skip
    assert stopped == [(name, "stopped", "UpcastError", egwene) for name in ("Party", "QuestsByTown", "Starts")] + [
        ("Towns", "running", None, None)]  # fmt: skip


@pytest.mark.parametrize("engine", ["plpython", "plv8", "pljs"])
def test_an_upcaster_in_the_database_gets_no_more_than_a_handler(store: EventStore, dsn: str, engine: str) -> None:
    """In every in-database engine (the Python host's sandbox: tests/engine/test_upcasters.py)."""
    if engine in ("plv8", "pljs"):
        require_language(dsn, engine)
    deploy(store, HOSTILE_UPCASTERS, engine=engine, lifecycles={"Seen": "inline"})
    with EventStore(dsn, max_size=1) as one:  # one backend: its context started, the limit below is the calls'
        one.append({"id": "h", "type": "H", "data": [{"$type": "ReachHost"}] + [{"$type": "Keep", "marks": []}] * 3})
        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute("select pge_set_engine_settings(0.25, 256, python_path) from pge_engine")
        upcasters_get_no_more_than_a_handler(one)


def upcasters_get_no_more_than_a_handler(store: EventStore) -> None:
    seen = export_views(store)["aggregates"]["Seen"]
    assert seen == {"reach": UPCASTER_REACHES_NOTHING, "keeps": [["changed in place"]] * 3}
    assert [e.data for e in store.fetch_stream("h").events[1:]] == [{"marks": []}] * 3, "the stored log is as appended"
    with pytest.raises(
        errors.SandboxTimeoutError, match=r"^upcaster Loop from version 1 ran past the time limit of 0\.25 s"
    ):
        store.append({"id": "h", "data": {"$type": "Loop"}})
    with pytest.raises(
        errors.UpcastError, match=r"^upcaster Reenter from version 1 \(Upcasters\.js\) failed on Reenter"
    ):
        store.append({"id": "h", "data": {"$type": "Reenter"}})
    store.append({"id": "h", "data": {"$type": "Keep", "marks": []}})
    assert export_views(store)["aggregates"]["Seen"]["keeps"] == [["changed in place"]] * 4, "the session goes on"
