"""Versioned projections (docs/deploy.md#versions): a new .version() of an async projection is built beside
the deployed one, which serves reads and updates until the switch; the switch is one transaction that no
reader notices; the old table stays until a deploy with prune."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from clihelp import jsproj
from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.follow.daemon import Daemon
from jsproj.projections.deploy import deploy
from jsproj.projections.promote import promote
from jsproj.projections.status import projection_status, wait_for_projections
from jsproj.projections.views import View, fetch_view
from jsproj.store.sync import EventStore
from test_deploy import rows
from test_deploy_safety import DRESSED, answer, dress, dressed, reader  # noqa: F401 (reader: its fixture)

from projections import sources
from waiting import daemon_thread, wait_until

pytestmark = pytest.mark.slow  # versions built beside deployed projections by daemons

V1 = """projections.projectStream('Quest').named('Party').by({
  $init: function () { return { towns: [] }; },
  TownReached: function (state, evt) { state.towns.push(evt.location); }
}).async();"""
V2 = """projections.projectStream('Quest').named('Party').by({
  $init: function () { return { n: 0 }; },
  TownReached: function (state, evt) { state.n += 1; state.last = evt.location; }
}).async().version(2);"""
V3 = V2.replace("state.n += 1;", "state.n += 10;").replace(".version(2)", ".version(3)")


def town(stream: str, location: str) -> dict[str, Any]:
    return {"id": stream, "type": "Quest", "data": {"$type": "TownReached", "location": location}}


def v2_of(events: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """What version 2 folds from ``events`` (stream, location), from scratch."""
    folded: dict[str, dict[str, Any]] = {}
    for stream, location in events:
        folded[stream] = {"n": folded.get(stream, {"n": 0})["n"] + 1, "last": location}
    return folded


def version_of(dsn: str) -> int:
    return rows(dsn, "select version from pge_projection_definitions where name = 'Party'")[0][0]


def tables(dsn: str) -> list[str]:
    return [
        r[0]
        for r in rows(
            dsn,
            "select relname from pg_class where relnamespace = current_schema()::regnamespace and relkind = 'r' "
            "and (relname like 'pge_projections_%' or relname like 'pge_v%' or relname like 'pge_build_%') "
            "order by 1",
        )
    ]


def holding_the_build() -> tuple[threading.Event, threading.Event, Callable[[str, int], None]]:
    """(held, release, on_progress): a daemon given ``on_progress`` holds the new version's build after its
    first page (its thread calls it) and sets ``held``, until ``release`` is set."""
    held, release = threading.Event(), threading.Event()

    def on_progress(name: str, events: int) -> None:
        if threading.current_thread().name.startswith("jsproj-version-build"):
            held.set()
            release.wait(60)

    return held, release, on_progress


def test_version_is_declared_and_described() -> None:
    with Projections(sources(party=V2)) as loaded:
        assert loaded.infos[0].version == 2
    with Projections(sources(party=V1)) as loaded:
        assert loaded.infos[0].version == 1
    bad = V1.replace(".async()", ".async().version(0)")
    with pytest.raises(errors.ProjectionDefinitionError, match=r"\.version\(\) takes a whole number"):
        Projections(sources(party=bad)).close()


def test_a_new_version_switches_without_a_failed_read(store: EventStore, dsn: str) -> None:
    appended = [(f"q{i % 7}", f"town{i}") for i in range(300)]
    store.append_all([town(s, t) for s, t in appended])
    deploy(store, sources(party=V1))
    failures: list[BaseException] = []
    reads = [0]
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                View(store, "Party").find()
                fetch_view(store, "Party")
                reads[0] += 1
            except (errors.JsprojError, psycopg.Error) as exc:  # any failed read fails the test
                failures.append(exc)

    with daemon_thread(dsn):
        wait_for_projections(store)
        assert fetch_view(store, "Party", "q0")["towns"][0] == "town0"  # version 1
        reader = threading.Thread(target=read)
        reader.start()
        try:
            report = deploy(store, sources(party=V2))
            assert report.pending == ["Party"] and report.changed == []
            assert version_of(dsn) == 1  # the deployed version serves until the switch
            more = [(f"q{i % 7}", f"later{i}") for i in range(50)]
            for stream, location in more:  # during the build, or after: both versions get them
                store.append(town(stream, location))
            appended += more
            wait_until(lambda: version_of(dsn) == 2)
            wait_for_projections(store)
            assert fetch_view(store, "Party") == v2_of(appended)  # version 2, as a rebuild from scratch folds it
            before = reads[0]
            wait_until(lambda: reads[0] > before + 5)
            # A second switch, with the reader still looping.
            assert deploy(store, sources(party=V3)).pending == ["Party"]
            wait_until(lambda: version_of(dsn) == 3)
            wait_for_projections(store)
            before = reads[0]
            wait_until(lambda: reads[0] > before + 5)
        finally:
            stop.set()
            reader.join(timeout=30)
    assert failures == [] and reads[0] > 10
    assert fetch_view(store, "Party") == {k: {**v, "n": v["n"] * 10} for k, v in v2_of(appended).items()}
    # The old versions' tables are kept, with their documents, until a deploy with prune.
    assert tables(dsn) == ["pge_projections_party", "pge_v1_party", "pge_v2_party"]
    old = dict(rows(dsn, "select id, data from pge_v1_party"))
    assert old["q0"]["towns"][0] == "town0"
    assert rows(dsn, "select version, status, table_name from pge_projection_versions order by 1") == [
        (1, "retired", "pge_v1_party"),
        (2, "retired", "pge_v2_party"),
    ]


def test_appends_before_the_switch_reach_the_deployed_version_and_promote_switches(store: EventStore, dsn: str) -> None:
    appended = [("q1", "Bree"), ("q2", "Rivendell")]
    for stream, location in appended:
        store.append(town(stream, location))
    deploy(store, sources(party=V1))
    with daemon_thread(dsn):
        wait_for_projections(store)
        report = deploy(store, sources(party=V2), promote=False)
        assert report.pending == ["Party"]
        wait_until(lambda: rows(dsn, "select status from pge_projection_versions") == [("built",)])
        [status] = projection_status(store)
        assert status.version == 1 and status.pending == {"version": 2, "status": "built", "events": 2, "error": None}
        store.append(town("q1", "Moria"))  # the deployed version 1 runs on
        appended.append(("q1", "Moria"))
        wait_for_projections(store)
        assert fetch_view(store, "Party", "q1") == {"towns": ["Bree", "Moria"]}
        assert version_of(dsn) == 1 and "pge_build_party" not in tables(dsn)
        # The same version again changes nothing.
        assert deploy(store, sources(party=V2), promote=False).unchanged == ["Party"]
        assert rows(dsn, "select status from pge_projection_versions") == [("built",)]
        assert promote(store, "Party") == 2
        wait_until(lambda: version_of(dsn) == 2)
        wait_for_projections(store)
        assert fetch_view(store, "Party") == v2_of(appended)
    with pytest.raises(errors.UnknownProjectionError, match="no version waiting"):
        promote(store, "Party")


def test_prune_drops_replaced_versions_and_versions_only_go_up(store: EventStore, dsn: str) -> None:
    store.append(town("q1", "Bree"))
    deploy(store, sources(party=V1))
    worker = Daemon(dsn, poll_interval=0.05)
    assert worker.run(until_caught_up=True)
    deploy(store, sources(party=V2))
    assert Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    assert version_of(dsn) == 2
    assert deploy(store, sources(party=V2)).unchanged == ["Party"]  # redeploying the same version: nothing
    assert "pge_v1_party" in tables(dsn)
    with pytest.raises(errors.JsprojError, match="version 2 is deployed"):
        deploy(store, sources(party=V1))
    plan = deploy(store, sources(party=V2), dry_run=True)
    assert plan.retired == ["Party v1"] and "pge_v1_party" in tables(dsn)
    report = deploy(store, sources(party=V2), prune=True)
    assert report.retired == ["Party v1"]
    assert tables(dsn) == ["pge_projections_party"]
    assert rows(dsn, "select count(*) from pge_projection_versions") == [(0,)]
    assert fetch_view(store, "Party", "q1") == {"n": 1, "last": "Bree"}


def test_a_version_that_fails_replaces_nothing(store: EventStore, dsn: str) -> None:
    store.append(town("q1", "Bree"))
    deploy(store, sources(party=V1))
    assert Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    failing = V3.replace("state.n += 10;", "throw new Error('no towns in v3');")
    deploy(store, sources(party=failing))
    with daemon_thread(dsn):
        wait_until(lambda: rows(dsn, "select status from pge_projection_versions") == [("failed",)])
        store.append(town("q1", "Moria"))
        wait_for_projections(store)
    assert version_of(dsn) == 1
    assert fetch_view(store, "Party", "q1") == {"towns": ["Bree", "Moria"]}
    [status] = projection_status(store)
    assert status.pending is not None and "no towns in v3" in status.pending["error"]["message"]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select to_regclass('pge_build_party')").fetchone() == (None,)


def test_a_new_version_brings_its_declared_indexes_and_the_old_table_keeps_its_own(store: EventStore, dsn: str) -> None:
    store.append(town("q1", "Bree"))
    deploy(store, sources(party=V1.replace(".async()", ".async().index('towns')")))
    assert Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    deploy(store, sources(party=V2.replace(".async()", ".async().index('last')")))
    assert Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    indexed = rows(
        dsn,
        "select tablename, obj_description(indexname::regclass, 'pg_class') from pg_indexes "
        "where schemaname = current_schema() and tablename in ('pge_projections_party', 'pge_v1_party') "
        "and indexname not like '%pkey%' and indexname not like 'pge_v1_party_%' order by 1",
    )
    assert indexed == [("pge_projections_party", "jsproj index: last")]
    kept = rows(dsn, "select count(*) from pg_indexes where tablename = 'pge_v1_party'")
    assert kept == [(2,)]  # its primary key and its index of towns, renamed
    assert View(store, "Party").find(where={"last": "Bree"}) == [("q1", {"n": 1, "last": "Bree"})]


def test_the_deployed_version_keeps_being_updated_while_the_new_one_builds(store: EventStore, dsn: str) -> None:
    store.append(town("q1", "Bree"))
    deploy(store, sources(party=V1))
    held, release, on_progress = holding_the_build()

    with daemon_thread(dsn, on_progress=on_progress):
        try:
            wait_for_projections(store)
            deploy(store, sources(party=V2))
            wait_until(held.is_set)
            store.append(town("q1", "Moria"))  # during the build: version 1 applies it
            wait_until(lambda: fetch_view(store, "Party", "q1") == {"towns": ["Bree", "Moria"]})
            assert version_of(dsn) == 1
        finally:
            release.set()  # the build goes on
        wait_until(lambda: version_of(dsn) == 2)
        store.append(town("q1", "Lorien"))
        wait_for_projections(store)
        assert fetch_view(store, "Party") == {"q1": {"n": 3, "last": "Lorien"}}
    assert dict(rows(dsn, "select id, data from pge_v1_party")) == {"q1": {"towns": ["Bree", "Moria"]}}


def test_the_cli_deploys_without_promoting_shows_the_version_and_promotes(
    store: EventStore, dsn: str, tmp_path
) -> None:
    store.append(town("q1", "Bree"))
    folder = tmp_path / "projections"
    folder.mkdir()
    (folder / "party.js").write_text(V1)
    args = ("--dsn", dsn, "--projections", str(folder))
    assert jsproj("deploy", *args).returncode == 0
    assert Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    unversioned = V1.replace("state.towns.push(evt.location);", "state.towns.unshift(evt.location);")
    (folder / "party.js").write_text(unversioned)
    for dry in ((), ("--dry-run",)):
        ignored = jsproj("deploy", *args, "--no-promote", *dry)
        assert ignored.returncode == 1, "--no-promote on a change without a new .version() is refused, not ignored"
        assert "--no-promote waits to promote new versions, and Party change" in ignored.stderr, ignored.stderr
        assert "promote=False" not in ignored.stderr and version_of(dsn) == 1
    assert fetch_view(store, "Party", "q1") == {"towns": ["Bree"]}, "nothing was rebuilt"
    (folder / "party.js").write_text(V2)
    deployed = jsproj("deploy", *args, "--no-promote")
    assert deployed.returncode == 0, deployed.stderr
    assert "new versions built beside the deployed ones (jsproj daemon): Party" in deployed.stdout
    assert Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    shown = jsproj("status", "--dsn", dsn, env={"COLUMNS": "200"})  # a wide terminal: cells on one line
    assert "v2 built" in shown.stdout, shown.stdout
    as_json = jsproj("status", "--dsn", dsn, "--json")
    assert '"version": 1' in as_json.stdout and '"status": "built"' in as_json.stdout
    promoted = jsproj("promote", "Party", "--dsn", dsn)
    assert promoted.returncode == 0, promoted.stderr
    assert "Party: version 2 is switched to when the daemon has built it" in promoted.stdout
    assert Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    assert version_of(dsn) == 2 and fetch_view(store, "Party", "q1") == {"n": 1, "last": "Bree"}
    again = jsproj("promote", "Party", "--dsn", dsn)
    assert again.returncode != 0 and "no version waiting" in again.stderr
    plan = jsproj("deploy", *args, "--dry-run")
    assert "replaced versions' tables kept, dropped with --prune: Party v1" in plan.stdout, plan.stdout
    pruned = jsproj("deploy", *args, "--prune")
    assert "replaced versions' tables dropped: Party v1" in pruned.stdout
    assert tables(dsn) == ["pge_projections_party"]


def test_the_switch_keeps_what_a_user_gave_the_table(store: EventStore, dsn: str, reader: str) -> None:  # noqa: F811
    store.append(town("q1", "Bree"))
    deploy(store, sources(party=V1))
    assert Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    dress(dsn, "pge_projections_party", reader)
    deploy(store, sources(party=V2))
    assert Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    assert version_of(dsn) == 2
    assert dressed(dsn, "pge_projections_party", reader) == DRESSED
    # The retired table keeps its grant, under its own name; its copy of the index is renamed.
    assert answer(dsn, "select has_table_privilege(%s, 'pge_v1_party', 'select')", (reader,)) == [(True,)]


def test_a_redeploy_of_the_deployed_version_ends_the_one_being_built(store: EventStore, dsn: str) -> None:
    store.append(town("q1", "Bree"))
    deploy(store, sources(party=V1))
    held, release, on_progress = holding_the_build()

    changed = V1.replace("evt.location", "evt.location.toUpperCase()")
    with daemon_thread(dsn, on_progress=on_progress):
        try:
            wait_for_projections(store)
            deploy(store, sources(party=V2))
            wait_until(held.is_set)
            assert deploy(store, sources(party=changed)).changed == ["Party"]  # version 1 again, rebuilt
            assert rows(dsn, "select count(*) from pge_projection_versions") == [(0,)]
        finally:
            release.set()
        wait_until(lambda: rows(dsn, "select status from pge_projection_progress") == [("running",)])
        wait_for_projections(store)
        assert fetch_view(store, "Party") == {"q1": {"towns": ["BREE"]}}
    assert version_of(dsn) == 1 and tables(dsn) == ["pge_projections_party"]


def test_waiting_to_promote_a_change_without_a_new_version_is_refused_and_changes_nothing(
    store: EventStore, dsn: str
) -> None:
    deploy(store, sources(party=V1))
    store.append(town("q1", "Bree"))
    before = rows(dsn, "select name, hash, version from pge_projection_definitions")
    unversioned = V1.replace("state.towns.push(evt.location);", "state.towns.unshift(evt.location);")
    with pytest.raises(errors.InputError, match=r"promote=False waits to promote new versions, and Party change") as e:
        deploy(store, sources(party=unversioned), promote=False)
    assert e.value.info["changed"] == ["Party"]
    assert rows(dsn, "select name, hash, version from pge_projection_definitions") == before
    assert deploy(store, sources(party=V2), promote=False).pending == ["Party"], "a new version may wait"
