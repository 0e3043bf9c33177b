"""A deploy never destroys silently: dry runs change nothing, removals need prune, rebuilds keep a user's
indexes and grants on document tables (docs/deploy.md)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from clihelp import jsproj
from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.follow.daemon import Daemon
from jsproj.projections import operations as control
from jsproj.projections.deploy import deploy, deployment_sql
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore
from test_deploy import rows

from projections import PARTY, sources
from waiting import daemon_thread, wait_until

ENGINES = ["python", "plpython"]


def answer(dsn: str, query: sql.Composable | str, params: tuple = ()) -> list:
    """The rows of ``query`` with ``params`` (identifiers composed with psycopg.sql)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(query if isinstance(query, sql.Composable) else sql.SQL(query), params).fetchall()


JOURNAL = """projections.projectStream('Quest').named('Journal').by({
  $init: function () { return { n: 0 }; },
  TownReached: function (state) { state.n += 1; }
}).index('n');"""
MEMBER = """projections.projectEvent('Joined').named('Member').by(function (e) {
  return { id: e.who, location: e.location };
}).async();"""


def snapshot(dsn: str, table: str = "pge_projections_party") -> dict[str, list]:
    """Everything a deploy could change: definitions, the schema's relations (a truncate or a new table
    changes a relfilenode), progress, documents, the engine's generation, the triggers."""
    return {
        "definitions": rows(dsn, "select * from pge_projection_definitions order by name"),
        "relations": rows(
            dsn,
            "select relname, relfilenode from pg_class where relnamespace = current_schema()::regnamespace "
            "order by relname",
        ),
        "progress": rows(dsn, "select * from pge_projection_progress order by name, partition"),
        "documents": answer(dsn, sql.SQL("select id, data from {} order by id").format(sql.Identifier(table))),
        "aggregates": rows(dsn, "select name, data, updated_at from pge_aggregates order by name"),
        "engine": rows(dsn, "select generation, bundle_hash from pge_engine"),
        "triggers": rows(dsn, "select tgname from pg_trigger where tgrelid = 'pge_events'::regclass order by 1"),
    }


@pytest.fixture
def reader(dsn: str) -> Iterator[str]:
    """A role of its own (roles are the cluster's), dropped afterwards."""
    role = f"reader_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("grant usage on schema public to {}").format(sql.Identifier(role)))
    yield role
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def dress(dsn: str, table: str, role: str) -> None:
    """What a production team adds to a view's table: an index of its own, a grant, a comment."""
    with psycopg.connect(dsn) as conn:
        table_sql, role_sql = sql.Identifier(table), sql.Identifier(role)
        index = "create index towns_by_count on {} ((jsonb_array_length(data -> 'towns'))) where id <> '%%'"
        conn.execute(sql.SQL(index).format(table_sql))
        conn.execute(sql.SQL("grant select on {} to {}").format(table_sql, role_sql))
        conn.execute(sql.SQL("comment on table {} is 'read by the reports'").format(table_sql))


def dressed(dsn: str, table: str, role: str) -> tuple:
    """Whether what :func:`dress` added is still there (and the index works on the table's rows)."""
    return (
        answer(
            dsn,
            "select indexdef like %s from pg_indexes where indexname = 'towns_by_count'",
            (f"%{table} USING btree%",),
        ),
        answer(dsn, "select has_table_privilege(%s, %s, 'select')", (role, table)),
        answer(dsn, "select obj_description(%s::regclass, 'pg_class')", (table,)),
    )


DRESSED = ([(True,)], [(True,)], [("read by the reports",)])


def test_a_dry_run_changes_nothing_and_reports_what_the_deploy_does(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY, Member=MEMBER.replace(".async()", ".async().index('location')")))
    store.append({"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}})
    before = snapshot(dsn)
    changed = PARTY.replace("state.towns.push(evt.location)", "state.towns.unshift(evt.location)")
    wanted = sources(Party=changed, Journal=JOURNAL)  # Member is gone, Journal is new
    plan = deploy(store, wanted, dry_run=True)
    assert snapshot(dsn) == before
    assert (plan.dry_run, plan.added, plan.changed, plan.unchanged) == (True, ["Journal"], ["Party", "Visits"], [])
    assert plan.removed == ["Member"] and plan.rebuild == ["Journal", "Party", "Visits"] and plan.rebuilt == {}
    assert plan.refused == ["Member"], "without prune, the deploy would be refused for Member"
    assert plan.indexes == {"Journal": {"created": ["n"], "dropped": []}}
    done = deploy(store, wanted, prune=True)
    assert {k: v for k, v in done.to_dict().items() if k not in ("dryRun", "rebuilt")} == {
        k: v for k, v in plan.to_dict().items() if k not in ("dryRun", "rebuilt")
    } | {"prune": True, "refused": []}
    assert done.rebuilt == {"Journal": 1, "Party": 1, "Visits": 1}


def test_a_dry_run_plans_index_changes_and_async_builds(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Member=MEMBER), indexes={"Member": ["location"]})  # jsproj.toml's: the source stays
    before = snapshot(dsn, "pge_projections_member")
    plan = deploy(store, sources(Member=MEMBER), indexes={"Member": ["who"]}, dry_run=True)
    assert snapshot(dsn, "pge_projections_member") == before
    assert (plan.unchanged, plan.building) == (["Member"], [])
    assert plan.indexes == {"Member": {"created": ["who"], "dropped": ["location"]}}
    plan = deploy(store, sources(Member=MEMBER + "\n// changed"), dry_run=True)
    assert (plan.changed, plan.building, plan.rebuild) == (["Member"], ["Member"], [])


def test_a_smaller_set_is_refused_without_prune_and_changes_nothing(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY, Journal=JOURNAL))
    store.append({"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}})
    before = snapshot(dsn)
    changed = PARTY.replace("state.towns.push(evt.location)", "state.towns.unshift(evt.location)")
    with pytest.raises(errors.PruneRequiredError) as refused:
        deploy(store, sources(Party=changed))
    assert refused.value.removed == ["Journal"]
    assert "Journal" in str(refused.value) and "pass prune=True" in str(refused.value)
    assert snapshot(dsn) == before, "not even the changed projection was deployed"
    report = deploy(store, sources(Party=changed), prune=True)
    assert report.removed == ["Journal"] and report.changed == ["Party", "Visits"]
    assert rows(dsn, "select to_regclass('pge_projections_journal')") == [(None,)]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_inline_redeploy_and_rebuild_keep_a_users_index_and_grants(
    store: EventStore, dsn: str, reader: str, engine: str
) -> None:
    deploy(store, sources(Party=PARTY), engine=engine)
    store.append({"id": "q1", "type": "Quest", "data": {"$type": "TownReached", "location": "Bree"}})
    dress(dsn, "pge_projections_party", reader)
    changed = PARTY.replace("state.towns.push(evt.location)", "state.towns.push(evt.location, evt.location)")
    report = deploy(store, sources(Party=changed), engine=engine)
    assert report.rebuilt["Party"] == 1 and fetch_view(store, "Party", "q1") == {"towns": ["Bree", "Bree"]}
    assert dressed(dsn, "pge_projections_party", reader) == DRESSED
    assert control.rebuild(store, "Party").events == 1
    assert dressed(dsn, "pge_projections_party", reader) == DRESSED
    assert fetch_view(store, "Party", "q1") == {"towns": ["Bree", "Bree"]}


def test_an_async_build_by_the_daemon_keeps_a_users_index_and_grants(store: EventStore, dsn: str, reader: str) -> None:
    member = MEMBER.replace(".async()", ".async().index('location')")
    for who in ("frodo", "sam"):
        store.append({"id": who, "type": "Hobbit", "data": {"$type": "Joined", "who": who, "location": "Shire"}})
    deploy(store, sources(Member=member))

    def built() -> bool:
        found = rows(dsn, "select status, events from pge_projection_progress where name = 'Member'")
        return found == [("running", 2)]

    worker = Daemon(dsn, poll_interval=0.05)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(built)
        with psycopg.connect(dsn) as conn:
            conn.execute("create index member_by_location on pge_projections_member ((data ->> 'location'))")
            conn.execute("comment on index member_by_location is 'the reports'")
            conn.execute(sql.SQL("grant select on pge_projections_member to {}").format(sql.Identifier(reader)))
            # an audit trigger of the team's, and a disabled one with a comment
            conn.execute("create table member_audit (id text, at timestamptz default now())")
            conn.execute("""create function audit_member() returns trigger language plpgsql
                            as $$ begin insert into member_audit (id) values (new.id); return new; end $$""")  # fmt: skip
            conn.execute("""create trigger "audit ON public.pge_projections_member rows" after insert or update on pge_projections_member
                            for each row execute function audit_member()""")  # fmt: skip
            conn.execute("create trigger muted after delete on pge_projections_member execute function audit_member()")
            conn.execute("alter table pge_projections_member disable trigger muted")
            conn.execute("comment on trigger muted on pge_projections_member is 'on when we audit deletes'")
        deploy(store, sources(Member=member + "\n// changed: built again"))  # a redeploy
        wait_until(built)
        control.rebuild(store, "Member")  # and a rebuild, both by the daemon's staged build
        wait_until(built)
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert rows(dsn, "select indexdef from pg_indexes where indexname = 'member_by_location'") == [
        (
            "CREATE INDEX member_by_location ON public.pge_projections_member USING btree (((data ->> 'location'::text)))",
        )
    ]
    assert rows(dsn, "select obj_description('member_by_location'::regclass, 'pg_class')") == [("the reports",)]
    assert answer(dsn, "select has_table_privilege(%s, 'pge_projections_member', 'select')", (reader,)) == [(True,)]
    jsproj_index = answer(dsn, "select pge_index_name('Member', 'location')")[0][0]
    assert answer(dsn, "select count(*) from pg_indexes where indexname = %s", (jsproj_index,)) == [(1,)]
    assert rows(dsn, "select count(*) from pg_class where relname like 'pge\\_b%%member%%'") == [(0,)]
    triggers = """select tgname, tgenabled, obj_description(oid, 'pg_trigger') from pg_trigger
                  where tgrelid = 'pge_projections_member'::regclass and not tgisinternal order by tgname"""
    assert rows(dsn, triggers) == [
        ("audit ON public.pge_projections_member rows", "O", None),  # (a name holding what the swap replaces)
        ("muted", "D", "on when we audit deletes"),
    ]
    before = rows(dsn, "select count(*) from member_audit")[0][0]
    store.append({"id": "pippin", "type": "Hobbit", "data": {"$type": "Joined", "who": "pippin", "location": "Shire"}})
    with daemon_thread(dsn):
        wait_until(lambda: rows(dsn, "select count(*) from member_audit")[0][0] > before)  # it fires on the new table


def test_the_cli_dry_run_and_prune(store: EventStore, dsn: str, tmp_path) -> None:
    (tmp_path / "Party.js").write_text(PARTY)
    (tmp_path / "Journal.js").write_text(JOURNAL)
    args = ("--dsn", dsn, "--projections", str(tmp_path))
    assert jsproj("deploy", *args).returncode == 0
    (tmp_path / "Journal.js").unlink()
    before = snapshot(dsn)
    plan = jsproj("deploy", *args, "--dry-run")
    assert plan.returncode == 1, "a plan step fails where the deploy would"
    assert "dry run: nothing was changed" in plan.stdout
    assert "removed: Journal (refused without --prune)" in plan.stdout
    assert plan.stderr.strip().endswith("pass --prune to remove them, or deploy a set that includes them")
    as_json = jsproj("deploy", *args, "--dry-run", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["refused"] == ["Journal"]
    refused = jsproj("deploy", *args)
    assert refused.returncode == 1 and "Journal" in refused.stderr
    assert "pass --prune to remove them" in refused.stderr and "prune=True" not in refused.stderr, "the CLI's words"
    assert snapshot(dsn) == before
    allowed = jsproj("deploy", *args, "--dry-run", "--prune")
    assert allowed.returncode == 0 and "(refused without --prune)" not in allowed.stdout, allowed.stderr
    pruned = jsproj("deploy", *args, "--prune", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert '"removed": [\n    "Journal"\n  ]' in pruned.stdout or '"removed": ["Journal"]' in pruned.stdout
    assert rows(dsn, "select name from pge_projection_definitions order by name") == [("Party",), ("Visits",)]


def test_a_users_indexes_are_staged_before_the_swap_and_renamed_by_it(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Member=MEMBER))
    with psycopg.connect(dsn) as conn:
        conn.execute("create index by_where on pge_projections_member ((data ->> 'location')) where id like 'f%'")
        conn.execute("create table pge_build_member (like pge_projections_member including defaults)")
        conn.execute("alter table pge_build_member add constraint pge_build_member_pkey primary key (id)")
        staged = conn.execute("select pge_stage_user_indexes('Member')").fetchone()
        assert staged == (["by_where"],)
        staged_oid = conn.execute(
            "select indexrelid from pg_index where indrelid = 'pge_build_member'::regclass and not indisprimary"
        ).fetchone()
        conn.execute("select pge_swap_build('Member')")
        conn.commit()
    assert rows(dsn, "select 'by_where'::regclass::oid") == [staged_oid], "renamed, not made again in the swap"
    assert rows(dsn, "select indexdef from pg_indexes where indexname = 'by_where'") == [
        (
            "CREATE INDEX by_where ON public.pge_projections_member USING btree (((data ->> 'location'::text))) "
            "WHERE (id ~~ 'f%'::text)",
        )
    ]


def test_the_dba_script_removes_only_with_prune(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY, Journal=JOURNAL), engine="plpython")
    with Projections(sources(Party=PARTY)) as loaded:
        script = deployment_sql(loaded.sources, loaded.infos, engine="plpython", schema="public")
        pruning = deployment_sql(loaded.sources, loaded.infos, engine="plpython", schema="public", prune=True)
    assert "prune => false" in script and "prune => true" in pruning
    with psycopg.connect(dsn) as conn:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(script)
        assert refused.value.sqlstate == "JP412" and "Journal" in str(refused.value)
        conn.rollback()
        conn.execute(pruning)
        conn.commit()
    assert rows(dsn, "select name from pge_projection_definitions order by name") == [("Party",), ("Visits",)]


def test_an_async_build_keeps_row_level_security_and_skips_an_index_the_new_documents_cannot_have(
    store: EventStore, dsn: str, reader: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A grant carried over without the policies would open every row: both go with the table; and a unique
    index the rebuilt documents break is left out (a warning), not a build that can never finish."""
    for who, place in (("frodo", "Shire"), ("sam", "Bree")):
        store.append({"id": who, "type": "Hobbit", "data": {"$type": "Joined", "who": who, "location": place}})
    deploy(store, sources(Member=MEMBER))
    built = "select status, events from pge_projection_progress where name = 'Member'"
    with daemon_thread(dsn):
        wait_until(lambda: rows(dsn, built) == [("running", 2)])
        with psycopg.connect(dsn) as conn:
            role = sql.Identifier(reader)
            conn.execute(sql.SQL("grant select on pge_projections_member to {}").format(role))
            conn.execute("alter table pge_projections_member enable row level security")
            policy = (
                "create policy only_frodo on pge_projections_member for select to {} using (data ->> 'id' = 'frodo')"
            )
            conn.execute(sql.SQL(policy).format(role))
            conn.execute("create unique index one_per_place on pge_projections_member ((data ->> 'location'))")
        everyone_home = MEMBER.replace("location: e.location", "location: 'Shire', again: true")
        deploy(store, sources(Member=everyone_home))  # two documents in one place: the unique index cannot be
        again = "select data ->> 'again' from pge_projections_member"
        wait_until(lambda: rows(dsn, again) == [("true",), ("true",)])
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(reader)))
        assert conn.execute("select data ->> 'id' from pge_projections_member").fetchall() == [("frodo",)]
    assert rows(dsn, "select count(*) from pg_indexes where indexname = 'one_per_place'") == [(0,)]
    assert rows(dsn, "select count(*) from pg_class where relname like 'pge\\_b%%member%%'") == [(0,)]
    said = [r.getMessage() for r in caplog.records if r.name == "jsproj.daemon" and r.levelname == "WARNING"]
    assert any(m.startswith("index one_per_place of projection Member is not kept") for m in said), said
