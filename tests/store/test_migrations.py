"""The migration runner: upgrading a schema the previous main made, functions files, the runner's rules.

The previous main (commit c25e46e) had six migrations that restated whole
functions; its files are kept as fixtures (tests/fixtures/c25e46e_migrations)
and applied as its migrate.py did, so that an upgrade is tested against what
such a database really holds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from jsproj.engine.bundle import database_bundle
from jsproj.engine.projections import Projections
from jsproj.projections.deploy import definitions, engine_sql
from jsproj.projections.views import fetch_view
from jsproj.store import migrate as migrate_module
from jsproj.store.migrate import MIGRATION_FILE, MigrationError, functions_files, migrate, migrations
from jsproj.store.sync import EventStore

from conftest import dsn_for
from projections import PARTY

PREVIOUS_MAIN = Path(__file__).resolve().parents[1] / "fixtures" / "c25e46e_migrations"

LIFECYCLES = {"Visits": "async"}  # an async projection too: its progress row and the notify trigger


def town(stream: str, location: str, **fields: Any) -> dict[str, Any]:
    return {"id": stream, **fields, "data": {"$type": "TownReached", "location": location}}


@pytest.fixture
def empty_database(cluster) -> Iterator[Callable[[], str]]:
    """New databases with nothing in them (not cloned from the migrated template)."""
    made: list[str] = []

    def new() -> str:
        name = f"migrations_{len(made)}_{id(made)}"
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        made.append(name)
        return dsn_for(cluster, name)

    yield new
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


def migrate_as_the_previous_main(conn: psycopg.Connection, schema: str = "public", upto: int = 6) -> None:
    """What c25e46e's migrate() did: each file once, search_path on the schema, rows in pge_migrations."""
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("set search_path = {}").format(sql.Identifier(schema)))
    conn.execute(
        """create table if not exists pge_migrations (
               version int primary key, name text not null, checksum text not null,
               applied_at timestamptz not null default now())"""
    )
    for path in sorted(PREVIOUS_MAIN.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        assert match, path
        if int(match.group(1)) > upto:
            continue
        text = path.read_text("utf-8")
        conn.execute(text.replace("@schema@", sql.Identifier(schema).as_string(conn)).encode())
        conn.execute(
            "insert into pge_migrations (version, name, checksum) values (%s, %s, %s)",
            (int(match.group(1)), match.group(2), hashlib.sha256(text.encode()).hexdigest()),
        )
    conn.commit()


def deploy_in_sql(conn: psycopg.Connection) -> None:
    """Deploy PARTY with the plpython engine through the schema's own pge_deploy and pge_rebuild."""
    with Projections([{"file": "Party.js", "source": PARTY}]) as loaded:
        rows = definitions(loaded.sources, loaded.infos, "plpython", LIFECYCLES)
    bundle, bundle_hash = database_bundle()
    conn.execute(engine_sql("plpython", '"public"').encode())
    outcome = conn.execute("select pge_deploy(%s, %s, %s)", (Jsonb(rows), bundle, bundle_hash)).fetchone()[0]
    for name in outcome["rebuild"]:
        conn.execute("select pge_rebuild(%s)", (name,))
    conn.commit()


def schema_of(conn: psycopg.Connection, schema: str = "public") -> dict[str, Any]:
    """Everything of ``schema`` a migration or a functions file makes, comparable across databases."""
    queries = {
        "functions": """select p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.prosecdef, p.proconfig,
                               p.proacl::text, obj_description(p.oid, 'pg_proc')
                        from pg_proc p where p.pronamespace = %(ns)s::regnamespace and p.proname like 'pge\\_%%'""",
        "tables": """select c.relname, c.relkind, obj_description(c.oid, 'pg_class') from pg_class c
                     where c.relnamespace = %(ns)s::regnamespace and c.relkind in ('r', 'v', 'S', 'i')""",
        "columns": """select table_name, ordinal_position, column_name, data_type, is_nullable, column_default,
                             is_identity, col_description(format('%%I.%%I', table_schema, table_name)::regclass,
                                                          ordinal_position)
                      from information_schema.columns where table_schema = %(ns)s""",
        "constraints": """select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint
                          where connamespace = %(ns)s::regnamespace""",
        "indexes": "select tablename, indexname, indexdef from pg_indexes where schemaname = %(ns)s",
        "triggers": """select t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid) from pg_trigger t
                       join pg_class c on c.oid = t.tgrelid
                       where c.relnamespace = %(ns)s::regnamespace and not t.tgisinternal""",
        "migrations": "select version, name, checksum from pge_migrations",
        "functions files": "select file, checksum from pge_function_files",
    }
    return {key: sorted(conn.execute(query, {"ns": schema}).fetchall()) for key, query in queries.items()}


def data_of(conn: psycopg.Connection) -> dict[str, Any]:
    return {
        "events": conn.execute(
            "select position, id, stream_id, version, type, data, metadata, tx_id::text from pge_events order by 1"
        ).fetchall(),
        "streams": conn.execute("select id, type from pge_streams order by 1").fetchall(),
        "party": conn.execute("select id, data from pge_projections_party order by 1").fetchall(),
        "aggregates": conn.execute("select name, data from pge_aggregates order by 1").fetchall(),
        "progress": conn.execute("select name, status, last_position from pge_projection_progress").fetchall(),
        "engine": conn.execute("select bundle_hash, generation from pge_engine").fetchall(),
    }


def test_a_database_the_previous_main_migrated_upgrades_to_exactly_a_fresh_schema(
    empty_database: Callable[[], str], dsn: str
) -> None:
    old = empty_database()
    with psycopg.connect(old) as conn:
        migrate_as_the_previous_main(conn)
        conn.execute("select pge_append(%s)", (Jsonb(town("q1", "Bree", type="Quest")),))
        # Today's engine reads the deployed files with pge_deployed_files() (a functions file makes it); the
        # previous main's read the definitions itself: that read stands in for it until the migration.
        conn.execute("""create function pge_deployed_files() returns table (file text, source text) language sql
                        as 'select distinct on (file) file, source from pge_projection_definitions order by file'""")
        deploy_in_sql(conn)
        conn.execute("select pge_append(%s)", (Jsonb(town("q1", "Moria")),))  # through the old inline trigger
        conn.execute("select pge_append(%s)", (Jsonb(town("q2", "Rivendell", type="Quest")),))
        conn.commit()
        before = data_of(conn)
        applied = migrate(conn)
        assert ([m.label for m in applied], applied.functions) == (
            [m.label for m in migrations() if m.version > 6],
            [f.name for f in functions_files()],
        ), "the migrations after the baseline, and every functions file"
        assert data_of(conn) == before, "no event, document or progress changed"
        upgraded = schema_of(conn)
        assert migrate(conn).functions == [], "then it is up to date"
    with psycopg.connect(dsn) as conn:  # a fresh schema, with the same deployment
        deploy_in_sql(conn)
        fresh = schema_of(conn)
    for key in fresh:
        assert upgraded[key] == fresh[key], key
    assert len(fresh["functions"]) >= 20 and {row[1] for row in fresh["triggers"]} >= {
        "pge_events_inline",
        "pge_events_notify",
    }
    assert ("pge_append(jsonb)", True) in {row[:3:2] for row in fresh["functions"]}, "security definer"
    assert [row[0] for row in upgraded["migrations"]] == [m.version for m in migrations()]
    with EventStore(old) as store:
        store.append(town("q1", "Lothlorien"))
        store.append({"id": "q3", "type": "Quest", "data": [{"$type": "TownReached", "location": "Bree"}] * 2})
        assert fetch_view(store, "Party", "q1") == {"towns": ["Bree", "Moria", "Lothlorien"]}
        assert fetch_view(store, "Party", "q3") == {"towns": ["Bree", "Bree"]}
        assert store.fetch_stream("q1").version == 3


def test_a_database_migrated_only_part_of_the_way_by_the_previous_main_is_refused(
    empty_database: Callable[[], str],
) -> None:
    with psycopg.connect(empty_database()) as conn:
        migrate_as_the_previous_main(conn, upto=3)
        with pytest.raises(MigrationError) as caught:
            migrate(conn)
    assert str(caught.value) == (
        "schema public predates migration 0006_baseline: it has migrations [1, 2, 3] of the versions 1-6 that "
        "the baseline stands for; migrate it to version 6 with the jsproj that made it, or make it afresh"
    )


def test_a_changed_migration_and_a_newer_release_are_errors(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("update pge_migrations set checksum = 'edited' where version = 6")
        with pytest.raises(
            MigrationError, match=r"^migration 0006_baseline was changed after it was applied to public$"
        ):
            migrate(conn)
        baseline = next(m for m in migrations() if m.version == 6)
        conn.execute("update pge_migrations set checksum = %s where version = 6", (baseline.checksum,))
        future = migrations()[-1].version + 1
        conn.execute("insert into pge_migrations (version, name, checksum) values (%s, 'future', 'x')", (future,))
        with pytest.raises(MigrationError) as caught:
            migrate(conn)
    assert str(caught.value) == (
        f"schema public has migrations this jsproj does not know ([{future}]): it was made by a newer release"
    )


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of jsproj's SQL that the test edits, used in place of the real one."""
    folder = tmp_path / "sql"
    shutil.copytree(migrate_module.sql_dir(), folder)
    monkeypatch.setattr(migrate_module, "sql_dir", lambda: folder)
    return folder


def applied_at(conn: psycopg.Connection) -> dict[str, Any]:
    return dict(conn.execute("select file, applied_at from pge_function_files").fetchall())


def test_a_changed_functions_file_is_applied_again_and_an_unchanged_one_is_not(dsn: str, release: Path) -> None:
    notify = release / "functions" / "async.sql"
    notify.write_text(
        notify.read_text().replace("perform pg_notify('pge_events', '');", "perform pg_notify('pge_events', 'v2');")
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = applied_at(conn)
        applied = migrate(conn)
        assert (list(applied), applied.functions) == ([], ["async.sql"])
        body = conn.execute("select pg_get_functiondef('pge_notify_daemons()'::regprocedure)").fetchone()[0]
        assert "'v2'" in body
        after = applied_at(conn)
        assert after["async.sql"] > before["async.sql"]
        assert {k: v for k, v in after.items() if k != "async.sql"} == {
            k: v for k, v in before.items() if k != "async.sql"
        }
        assert migrate(conn).functions == []


def test_a_migration_that_drops_a_function_has_its_file_applied_again(dsn: str, release: Path) -> None:
    """The way to change a signature: a migration drops the old function, and every functions file is applied."""
    label = f"{migrations()[-1].version + 1:04d}_drop_notify"  # the next version
    (release / "migrations" / f"{label}.sql").write_text("drop function pge_notify_daemons();\n")
    with psycopg.connect(dsn, autocommit=True) as conn:
        applied = migrate(conn)
        assert [m.label for m in applied] == [label]
        assert applied.functions == [f.name for f in functions_files()]
        assert conn.execute("select to_regprocedure('pge_notify_daemons()') is not null").fetchone()[0]


def test_concurrent_migrations_apply_everything_once(empty_database: Callable[[], str]) -> None:
    target = empty_database()
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        with psycopg.connect(target, autocommit=True) as conn:
            barrier.wait()
            try:
                applied = migrate(conn, "events")
                results.append(([m.label for m in applied], applied.functions))
            except Exception as exc:  # noqa: BLE001 - the test reports it
                results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = ([m.label for m in migrations()], [f.name for f in functions_files()])
    assert sorted(results, key=json.dumps) == sorted([everything] + [([], [])] * 3, key=json.dumps)


def plan(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> str:
    rows = conn.execute(("explain (verbose, costs off) " + query).encode(), params).fetchall()
    return "\n".join(row[0] for row in rows)


def test_pge_records_is_inlined_and_reads_by_index(store: EventStore, dsn: str) -> None:
    from jsproj.store.log import END, PAGE_AS_LINES

    store.append_all([{"id": f"s{n}", "type": "T", "data": [{"$type": "A", "n": n}] * 5} for n in range(2000)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("analyze")
        page = {"tx": "0", "position": 0, "until_tx": END[0], "until_position": END[1], "limit": 100}
        shown = plan(conn, PAGE_AS_LINES, page)
        assert "Function Scan" not in shown and "pge_records" not in shown, shown
        assert "Index Scan using pge_events_tx_order" in shown, shown
        lines = shown
        assert "pge_event_record" not in lines, "a record nobody selects is not built"
        by_position = plan(conn, "select r.record from pge_records() r where r.position = any (%(p)s)", {"p": [5, 6]})
        assert "Index Scan using pge_events_pkey" in by_position and "Function Scan" not in by_position, by_position
