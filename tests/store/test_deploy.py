"""Deploying projections and running them inline, with the Python engine and in the database."""

from __future__ import annotations

import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.errors import PythonEngineRequiredError
from jsproj.projections.deploy import deploy, deployment_sql
from jsproj.projections.views import UnknownDocumentError, export_views, fetch_view
from jsproj.store.sync import EventStore

from conformance_hosts import require_language
from projections import PARTY, counting, sources

ENGINES = ["python", "plpython"]


def rows(dsn: str, query: str) -> list:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


@pytest.mark.parametrize("engine", ENGINES)
def test_inline_projections_update_in_the_append_transaction(store: EventStore, dsn: str, engine: str) -> None:
    report = deploy(store, sources(Party=PARTY), engine=engine)
    assert report.added == ["Party", "Visits"]
    store.append({"id": "q1", "type": "Quest", "data": [{"$type": "TownReached", "location": "Bree"}]})
    store.append({"id": "q1", "data": {"$type": "TownReached", "location": "Moria"}})
    assert fetch_view(store, "Party", "q1") == {"towns": ["Bree", "Moria"]}
    assert fetch_view(store, "Visits") == {"Visits": {"n": 2}}
    assert export_views(store) == {
        "views": {"Party": {"q1": {"towns": ["Bree", "Moria"]}}},
        "aggregates": {"Visits": {"n": 2}},
    }


@pytest.mark.slow
def test_a_python_engine_append_reads_events_and_documents_by_index(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY))
    with psycopg.connect(dsn) as conn:
        for n in range(8):  # PL/pgSQL caches a generic plan after five calls, here while the tables are tiny
            single = Jsonb({"id": "q1", "type": "Quest", "data": [{"$type": "TownReached", "location": f"stop {n}"}]})
            conn.execute("select pge_append_records(%s)", (single,))
            conn.commit()
        towns = [{"$type": "TownReached", "location": f"town {n}"} for n in range(5)]
        store.append_all([{"id": f"q{n}", "type": "Quest", "data": towns} for n in range(2, 3000)])
        message = Jsonb({"id": "q2", "data": [{"$type": "TownReached", "location": "Bree"}] * 3})
        records, documents = conn.execute(
            "select records, documents from pge_append_records(%s)", (message,)
        ).fetchone()
        conn.execute("""select pge_write_changes('{"Party": {"upserts": {}, "deletes": ["q3"]}}')""")
        scans = dict(conn.execute("select relname, seq_scan from pg_stat_xact_user_tables").fetchall())
        conn.rollback()
    assert records.count('"Bree"') == 3 and len(documents["Party"]["q2"]["towns"]) == 5
    assert scans.get("pge_events", 0) == 0, "the events of an append are looked up by index, whatever the plan"
    assert scans.get("pge_projections_party", 0) == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_throwing_inline_projection_rolls_the_whole_append_back(store: EventStore, dsn: str, engine: str) -> None:
    deploy(store, sources(Party=PARTY), engine=engine)
    store.append({"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}})
    before = rows(dsn, "select count(*) from pge_events"), fetch_view(store, "Party"), fetch_view(store, "Visits")
    with pytest.raises(errors.ProjectionHandlerError) as caught:
        store.append({"id": "q1", "data": [{"$type": "TownReached", "location": "Moria"},
                                          {"$type": "TownReached", "location": "Shadar Logoth"}]})  # fmt: skip
    assert (caught.value.projection, caught.value.stream_id, caught.value.info["version"]) == ("Party", "q1", 3)
    assert "nobody comes back from Shadar Logoth" in str(caught.value)
    assert "Party.js:4:" in caught.value.stack
    after = rows(dsn, "select count(*) from pge_events"), fetch_view(store, "Party"), fetch_view(store, "Visits")
    assert after == before, "no event and no document was written"


@pytest.mark.parametrize("engine", [*ENGINES, "plv8", "pljs"])
def test_a_throwing_inline_projection_in_a_batch_names_its_message_and_writes_nothing(
    store: EventStore, dsn: str, engine: str
) -> None:
    if engine in ("plv8", "pljs"):
        require_language(dsn, engine)
    deploy(store, sources(Party=PARTY), engine=engine)
    batch = [
        {"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}},
        {"id": "q2", "type": "Quest", "data": [{"$type": "TownReached", "location": "Moria"},
                                               {"$type": "TownReached", "location": "Shadar Logoth"}]},
        {"id": "q1", "data": {"$type": "TownReached", "location": "Caemlyn"}},
    ]  # fmt: skip
    with pytest.raises(errors.ProjectionHandlerError) as caught:
        store.append_all(batch, where=["line 1", "line 2", "line 3"])
    assert str(caught.value).startswith("line 2: "), str(caught.value)
    assert (caught.value.projection, caught.value.stream_id, caught.value.info["version"]) == ("Party", "q2", 2)
    assert "nobody comes back from Shadar Logoth" in str(caught.value) and ":4:" in caught.value.stack
    assert rows(dsn, "select count(*) from pge_events") == [(0,)]
    assert not any(export_views(store)["views"].values()), "no document was written"
    assert [r.version for r in store.append_all(batch[:1] + batch[2:])] == [1, 2], "the store goes on"


FORGER = """projections.projectStream('Quest').named('Forger').by({
  TownReached: function (state, evt) {
    if (evt.location === 'Shadar Logoth') {
      throw { message: 'message 1: stream "q1" is at version 9', messageNumber: 1, position: 1, streamId: 'q1',
              kind: 'ConcurrencyError', name: 'ConcurrencyError', stack: 'at Elsewhere.js:1:1' };
    }
    state.town = evt.location;
  }
});"""


@pytest.mark.parametrize("engine", [*ENGINES, "plv8", "pljs"])
def test_projection_code_cannot_forge_which_message_of_a_batch_failed(store: EventStore, dsn: str, engine: str) -> None:
    """A thrown object's own fields (a message number, a position, a stream, a kind) never relabel the error:
    the store says which message and event failed."""
    if engine in ("plv8", "pljs"):
        require_language(dsn, engine)
    deploy(store, sources(Forger=FORGER), engine=engine)
    batch = [
        {"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}},
        {"id": "q2", "type": "Quest", "data": {"$type": "TownReached", "location": "Shadar Logoth"}},
    ]
    with pytest.raises(errors.ProjectionHandlerError) as caught:
        store.append_all(batch, where=["line 1", "line 2"])
    assert str(caught.value).startswith("line 2: projection Forger failed"), str(caught.value)
    assert (caught.value.stream_id, caught.value.info["position"]) == ("q2", 2)
    if engine != "python":  # (the Python engine's errors are named by their event's position, not by number)
        assert caught.value.info["messageNumber"] == 2
    assert rows(dsn, "select count(*) from pge_events") == [(0,)]


def test_a_plain_sql_append_updates_in_database_views(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY), engine="plpython")
    with psycopg.connect(dsn) as conn:
        conn.execute(
            """select pge_append('{"id": "q9", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}}')"""
        )
        conn.commit()
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(
                """select pge_append('{"id": "q9", "data": {"$type": "TownReached", "location": "Shadar Logoth"}}')"""
            )
        assert caught.value.sqlstate == "JP500"
        assert "nobody comes back" in caught.value.diag.message_primary
    assert fetch_view(store, "Party", "q9") == {"towns": ["Bree"]}


def test_appends_that_bypass_the_python_engine_are_refused(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY), engine="python")
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(
            """select pge_append('{"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}}')"""
        )
    assert caught.value.sqlstate == "JP503"
    assert "projections Party, Visits are updated inline by the Python engine" in caught.value.diag.message_primary
    assert rows(dsn, "select count(*) from pge_events") == [(0,)]


def test_a_store_opened_before_a_deploy_picks_the_projections_up(dsn: str) -> None:
    with EventStore(dsn) as writer, EventStore(dsn) as deployer:
        writer.append({"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}})
        deploy(deployer, sources(Party=PARTY), engine="python")
        writer.append({"id": "q1", "data": {"$type": "TownReached", "location": "Moria"}})  # retried through the engine
        assert fetch_view(writer, "Party", "q1") == {"towns": ["Bree", "Moria"]}
        deploy(
            deployer,
            sources(
                Party=PARTY.replace("state.towns.push(evt.location)", "state.towns.push(evt.location.toUpperCase())")
            ),
        )
        writer.append({"id": "q1", "data": {"$type": "TownReached", "location": "Tar Valon"}})
        assert fetch_view(writer, "Party", "q1") == {"towns": ["BREE", "MORIA", "TAR VALON"]}


def test_an_in_database_session_picks_up_a_redeploy(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY), engine="plpython")
    with psycopg.connect(dsn, autocommit=True) as session:  # one backend: its V8 is loaded once
        session.execute(
            """select pge_append('{"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}}')"""
        )
        deploy(store, sources(Party=PARTY.replace("state.towns.push(evt.location)", "state.towns.push(evt.location + '!')")),
               engine="plpython")  # fmt: skip
        session.execute("""select pge_append('{"id": "q1", "data": {"$type": "TownReached", "location": "Moria"}}')""")
    assert fetch_view(store, "Party", "q1") == {"towns": ["Bree!", "Moria!"]}


@pytest.mark.parametrize("engine", ENGINES)
def test_redeploying_a_changed_projection_rebuilds_it_and_leaves_the_others(
    store: EventStore, dsn: str, engine: str
) -> None:
    counter = counting("Counter")
    deploy(store, sources(Party=PARTY, Counter=counter), engine=engine)
    store.append({"id": "q1", "type": "Quest", "data": [{"$type": "TownReached", "location": "Bree"},
                                                       {"$type": "TownReached", "location": "Moria"}]})  # fmt: skip
    counted_at = rows(dsn, "select updated_at from pge_aggregates where name = 'Counter'")
    changed = PARTY.replace("state.towns.push(evt.location)", "state.towns.unshift(evt.location)")
    report = deploy(store, sources(Party=changed, Counter=counter), engine=engine)
    assert (report.changed, report.unchanged) == (["Party", "Visits"], ["Counter"])
    assert report.rebuilt == {"Party": 2, "Visits": 2}
    assert fetch_view(store, "Party", "q1") == {"towns": ["Moria", "Bree"]}
    assert fetch_view(store, "Visits") == {"Visits": {"n": 2}}
    assert rows(dsn, "select updated_at from pge_aggregates where name = 'Counter'") == counted_at, (
        "unchanged: untouched"
    )


def test_projections_missing_from_the_folder_are_removed_with_their_documents(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY))
    store.append({"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}})
    other = sources(Other="projections.aggregate('Other').by({ A: function () {} });")
    with pytest.raises(errors.PruneRequiredError) as refused:  # never silently (tests/store/test_deploy_safety.py)
        deploy(store, other)
    assert refused.value.removed == ["Party", "Visits"]
    assert "pass prune=True to remove them" in str(refused.value), "the library's words, not the CLI's"
    report = deploy(store, other, prune=True)
    assert sorted(report.removed) == ["Party", "Visits"]
    assert rows(dsn, "select to_regclass('pge_projections_party')") == [(None,)]
    assert rows(dsn, "select count(*) from pge_aggregates where name = 'Visits'") == [(0,)]


def test_lifecycles_can_be_overridden_and_live_ones_store_nothing(store: EventStore, dsn: str) -> None:
    report = deploy(store, sources(Party=PARTY), lifecycles={"Party": "live"})
    assert report.rebuilt == {"Visits": 0}
    assert rows(dsn, "select name, lifecycle from pge_projection_definitions order by 1") == [
        ("Party", "live"),
        ("Visits", "inline"),
    ]
    assert rows(dsn, "select to_regclass('pge_projections_party')") == [(None,)]
    store.append({"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}})
    with pytest.raises(errors.ProjectionError, match="Party is a live projection"):
        fetch_view(store, "Party")
    with pytest.raises(errors.UnknownProjectionError):
        deploy(store, sources(Party=PARTY), lifecycles={"Nope": "live"})


def test_unsafe_names_and_broken_projections_are_refused_and_nothing_is_deployed(store: EventStore, dsn: str) -> None:
    store.migrate()
    with pytest.raises(errors.ProjectionDefinitionError, match="is not a safe identifier"):
        deploy(store, sources(Bad="projections.aggregate('x; drop table pge_events').by({});"))
    with pytest.raises(errors.ProjectionSyntaxError, match=r"Broken\.js:1: SyntaxError"):
        deploy(store, sources(Broken="projections.aggregate('B').by({"))
    assert rows(dsn, "select count(*) from pge_projection_definitions") == [(0,)]


def test_concurrent_appends_never_lose_an_update_to_a_shared_document(dsn: str) -> None:
    counter = counting("Counter")
    for engine in ENGINES:
        with EventStore(dsn, max_size=8) as store:
            deploy(store, sources(Counter=counter), engine=engine)
            start = threading.Barrier(6)

            def writer(
                n: int, store: EventStore = store, start: threading.Barrier = start, engine: str = engine
            ) -> None:
                start.wait()
                for k in range(10):
                    store.append({"id": f"{engine}-{n}-{k}", "type": "T", "data": {"$type": "Tick"}})

            with ThreadPoolExecutor(6) as pool:
                list(pool.map(writer, range(6)))
            events = rows(dsn, "select count(*) from pge_events")[0][0]
            assert fetch_view(store, "Counter") == {"Counter": {"n": events}}, engine


def test_views_are_read_by_id_and_in_pages(store: EventStore) -> None:
    deploy(store, sources(Party=PARTY))
    for n in range(5):
        store.append({"id": f"q{n}", "type": "Quest", "data": {"$type": "TownReached", "location": f"T{n}"}})
    first = fetch_view(store, "Party", limit=2)
    assert list(first) == ["q0", "q1"]
    assert list(fetch_view(store, "Party", limit=10, after="q1")) == ["q2", "q3", "q4"]
    with pytest.raises(UnknownDocumentError, match="projection Party has no document 'q9'"):
        fetch_view(store, "Party", "q9")
    with pytest.raises(errors.UnknownProjectionError):
        fetch_view(store, "Nope")


def test_in_database_handlers_that_loop_are_stopped_and_the_session_survives(store: EventStore, dsn: str) -> None:
    looping = "projections.aggregate('Spin').by({ Spin: function () { while (true) {} }, Ok: function (s) { s.ok = true; } });"
    deploy(store, sources(Spin=looping), engine="plpython", timeout=0.5)  # the store keeps the limit (pge_engine)
    with psycopg.connect(dsn, autocommit=True) as session:
        with pytest.raises(psycopg.Error) as caught:
            session.execute("""select pge_append('{"id": "s", "type": "T", "data": {"$type": "Spin"}}')""")
        assert caught.value.sqlstate == "JP500"
        assert "projection Spin" in caught.value.diag.message_primary
        assert "time limit of 0.5 s" in caught.value.diag.message_primary
        session.execute("""select pge_append('{"id": "s", "type": "T", "data": {"$type": "Ok"}}')""")
    assert fetch_view(store, "Spin") == {"Spin": {"ok": True}}


def test_only_the_entries_run_as_the_owner_and_definitions_belong_to_the_owner(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY), engine="plpython")
    definers = dict(rows(dsn, "select proname, proconfig from pg_proc where proname like 'pge%' and prosecdef"))
    lifecycle = {"pge_archive_stream", "pge_unarchive_stream", "pge_erase_events"}
    assert set(definers) == {
        "pge_append",
        "pge_append_unapplied",
        *lifecycle,
        "pge_subscription_lease",
        "pge_append_emitted",
    }, (
        "the application's entry, the Python engine's, a stream's lifecycle (docs/lifecycle.md), a"
        " subscription's lease (docs/deploy.md#advisory-locks: a fixed lock class, a subscription of the store),"
        " and the daemon's append of what projections emit (docs/from-kurrentdb.md#emit-and-linkto)"
    )
    pinned = {"search_path=pg_catalog, pg_temp", "default_tablespace=", "default_table_access_method=heap"}
    assert all(set(config) == pinned for config in definers.values()), (
        "no JavaScript language here: only the search path and where what they create is stored to pin "
        "(tests/store/test_trust_boundary.py: with them)"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("drop role if exists intruder")
        conn.execute("create role intruder")
        conn.execute("grant usage on schema public to intruder")
        conn.execute("set role intruder")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("update pge_projection_definitions set source = 'while (true) {}'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select pge_engine_call('route', '{}')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # it would append as the owner
            conn.execute("""select pge_append('{"id": "x", "type": "T", "data": {"$type": "E"}}')""")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select pge_archive_stream('x')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select pge_erase_events(array[1::bigint], 'r', '{}')")
        conn.execute("reset role")
        conn.execute("drop owned by intruder")
        conn.execute("drop role intruder")


def test_engine_call_only_runs_deployed_code(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY), engine="plpython")
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.Error, match="unknown operation load"):
        conn.execute("select pge_engine_call('load', %s)", ('[{"file": "x.js", "source": "while (true) {}"}]',))


def test_a_language_the_dba_has_not_created_is_a_clear_error_and_deploys_nothing(cluster, dsn: str) -> None:
    database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(cluster.dsn, autocommit=True) as admin:
        admin.execute("drop role if exists jsproj_deployer")
        admin.execute("create role jsproj_deployer login")
        admin.execute(f"grant create on database {database} to jsproj_deployer")
    try:
        with EventStore(dsn.replace("user=jsproj", "user=jsproj_deployer"), schema="mine", max_size=1) as mine:
            with pytest.raises(errors.JsprojError, match='permission denied to create extension "plv8"'):
                deploy(mine, sources(Party=PARTY), engine="plv8")
        assert rows(dsn, "select count(*) from mine.pge_projection_definitions") == [(0,)]
    finally:
        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute("drop schema if exists mine cascade")
        with psycopg.connect(cluster.dsn, autocommit=True) as admin:
            admin.execute(f"revoke create on database {database} from jsproj_deployer")
            admin.execute("drop role jsproj_deployer")


@pytest.mark.parametrize("engine", ["plpython", "plv8", "pljs"])
def test_the_sql_for_a_dba_deploys_a_working_in_database_store(cluster, template: str, dsn: str, engine: str) -> None:
    if engine != "plpython":
        require_language(dsn, engine)
    with Projections(sources(Party=PARTY)) as loaded:
        script = deployment_sql(loaded.sources, loaded.infos, engine=engine, schema="events")
    done = subprocess.run(
        [str(cluster.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", "-", dsn],
        input=script, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with psycopg.connect(dsn) as conn:
        conn.execute("set search_path = events")
        conn.execute(
            """select pge_append('{"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}}')"""
        )
        assert conn.execute("select data from pge_projections_party").fetchall() == [({"towns": ["Bree"]},)]
    with EventStore(dsn, schema="events") as store:
        applied = store.migrate()
        assert (applied, applied.functions) == ([], []), "the script recorded the migrations and functions it applied"


def test_the_in_database_deployments_share_everything_but_the_language_wrapper() -> None:
    with Projections(sources(Party=PARTY)) as loaded:
        scripts = {engine: deployment_sql(loaded.sources, loaded.infos, engine=engine)
                   for engine in ("plpython", "plv8", "pljs")}  # fmt: skip

    def without_wrapper(script: str) -> str:
        rest = script.split("\n", 1)[1]  # the first line names the engine
        start = rest.index("\n-- the p")  # "-- the plpython engine" / "-- the plv8 engine" / "-- the pljs engine"
        end = rest.index("\n-- the definitions")
        # The definitions record their engine's name; nothing else may differ.
        return re.sub(r'"engine": "\w+"', '"engine": "E"', rest[:start] + rest[end:])

    def shared_javascript(script: str, language: str) -> str:
        wrapper = script[script.index(".pge_engine_run(token text") : script.index("\n-- the definitions")]
        wrapper = wrapper.replace("plv8,pljs", "BOTH").replace(language, "L")  # the known globals name both
        return re.sub(r"'[0-9a-f]{32}'", "'TOKEN'", wrapper)

    assert without_wrapper(scripts["plpython"]) == without_wrapper(scripts["plv8"]) == without_wrapper(scripts["pljs"])
    assert len(without_wrapper(scripts["plv8"])) > 0.85 * len(scripts["plv8"]), "the wrapper is a small part"
    assert shared_javascript(scripts["plv8"], "plv8") == shared_javascript(scripts["pljs"], "pljs")
    assert "language plpython3u" in scripts["plpython"] and "create extension if not exists pljs;" in scripts["pljs"]
    assert "create extension if not exists plv8;" in scripts["plv8"]


def test_events_in_a_rebuild_are_read_in_the_order_readers_see(store: EventStore, dsn: str) -> None:
    order = "projections.aggregate('Order').by({ $any: function (s, e, meta) { (s.positions = s.positions || []).push(meta.position); } });"
    store.migrate()
    slow = psycopg.connect(dsn)
    slow.execute("select pge_append(%s)", (Jsonb({"id": "a", "type": "T", "data": {"$type": "Slow"}}),))
    store.append({"id": "b", "type": "T", "data": {"$type": "Fast"}})
    slow.commit()
    slow.close()
    deploy(store, sources(Order=order))
    tx_order = [p for (p,) in rows(dsn, "select position from pge_events order by tx_id, position")]
    assert fetch_view(store, "Order") == {"Order": {"positions": tx_order}}


def test_a_bypassing_append_maps_to_a_clear_error(dsn: str) -> None:
    from jsproj.store.sync import translate

    with EventStore(dsn) as store:
        deploy(store, sources(Party=PARTY), engine="python")
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute("""select pge_append('{"id": "x", "type": "Quest", "data": {"$type": "A"}}')""")
    error = translate(caught.value)
    assert isinstance(error, PythonEngineRequiredError)
    assert "--engine pljs or plv8, which need no superuser" in str(error), "the engines any client's appends run"
