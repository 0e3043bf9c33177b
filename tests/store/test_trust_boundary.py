"""The SQL trust boundary against the application role, attacked with every setting a session can change.

An application role with only the documented grants (USAGE on the schema,
EXECUTE on pge_append, SELECT on a view table: docs/deploy.md#privileges)
appends through pge_append, which runs as the store's owner. Whatever it
sets first -- every plv8.*, pljs.*, plpython and jsproj.* setting there is,
to a hostile value -- the append must run the deployed engine under jsproj's
limits and grant the role nothing (docs/security.md, "The application role").
Each store has a projection that counts and one that loops; the engines'
time limit is 1 s, a session's statement_timeout of 60 s bounds the test.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from jsproj import errors
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore, translate

from conformance_hosts import require_language

COUNTER = """
projections.aggregate('Counter').by({ Add: function (state, evt) { state.n = (state.n || 0) + evt.n; } });
projections.aggregate('Spinner').by({ Spin: function () { while (true) {} } });
"""
#: store schema -> its engine
STORES = {"js_plv8": "plv8", "js_pljs": "pljs", "py_inline": "plpython", "py_engine": "python"}
#: settings jsproj's SQL ever read (none does now), which exist as placeholders only once a session sets them
JSPROJ_SETTINGS = (
    "jsproj.timeout",
    "jsproj.memory_limit",
    "jsproj.python_path",
    "jsproj.inline_engine",
    "jsproj.migrated",
)


@dataclass
class Boundary:
    admin: str  # a superuser's DSN (the store's owner here)
    app: str  # the application role's DSN
    role: str
    evil_path: Path  # a folder with a py_mini_racer package that says when it is imported


@pytest.fixture
def boundary(cluster, dsn: str) -> Iterator[Boundary]:
    for language in ("plv8", "pljs"):
        require_language(cluster.dsn, language)
    role = f"app_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("create extension if not exists plv8")
        admin.execute("create extension if not exists pljs")
    for schema, engine in STORES.items():
        with EventStore(dsn, schema=schema, max_size=1) as store:
            lifecycles = {"Counter": "inline", "Spinner": "inline"}
            deploy(store, [{"file": "Counter.js", "source": COUNTER}], engine=engine, lifecycles=lifecycles, timeout=1)
    evil = Path(tempfile.mkdtemp(prefix="jsproj-evil-"))
    (evil / "py_mini_racer").mkdir()
    (evil / "py_mini_racer" / "__init__.py").write_text(
        f"open({str(evil / 'imported')!r}, 'w').write('the application chose the Python path')\n"
    )
    shutil.chown(evil, "postgres") if os.geteuid() == 0 else None
    evil.chmod(0o777)
    with psycopg.connect(cluster.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
    with psycopg.connect(dsn, autocommit=True) as owner:
        for schema in STORES:  # the documented grants, and nothing else
            owner.execute(
                sql.SQL("grant usage on schema {} to {}").format(sql.Identifier(schema), sql.Identifier(role))
            )
            owner.execute(
                sql.SQL("grant execute on function {}.pge_append(jsonb) to {}").format(
                    sql.Identifier(schema), sql.Identifier(role)
                )
            )
            owner.execute(
                sql.SQL("grant select on {}.pge_aggregates to {}").format(sql.Identifier(schema), sql.Identifier(role))
            )
    yield Boundary(dsn, dsn.replace("user=jsproj", f"user={role}"), role, evil)
    shutil.rmtree(evil, ignore_errors=True)
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
    with psycopg.connect(cluster.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def settings_to_attack(admin: str) -> list[tuple[str, str, str | None, str | None, str | None, str]]:
    """Every plv8.*, pljs.*, plpython and jsproj.* setting: (name, vartype, min, max, enumvals, boot)."""
    with psycopg.connect(admin) as conn:
        conn.execute("select plv8_version(), pljs_version()")  # load the libraries: their settings exist then
        rows = conn.execute(
            """select name, vartype, min_val, max_val, array_to_string(enumvals, ','), coalesce(boot_val, '')
               from pg_settings where name ~ '^(plv8|pljs|plpython[0-9]*|jsproj)\\.' order by name"""
        ).fetchall()
    known = {row[0] for row in rows}
    return rows + [(name, "string", None, None, None, "") for name in JSPROJ_SETTINGS if name not in known]


def hostile(
    name: str, vartype: str, low: str | None, high: str | None, values: str | None, boot: str, evil: Path
) -> str:
    """A value of the setting meant to change what runs as the owner, or its limits."""
    if name.endswith(".start_proc"):
        return "pg_temp.jsproj_evil_" + name.split(".")[0]
    if name == "plv8.v8_flags":
        return "--allow-natives-syntax --stack-size=100000"
    if name == "jsproj.python_path":
        return str(evil)
    if name == "jsproj.inline_engine":
        return "python"
    if vartype in ("integer", "real"):
        return high if high is not None else "100000"
    if vartype == "bool":
        return "off" if boot == "on" else "on"
    if vartype == "enum" and values:
        return next(v for v in values.split(",") if v != boot)
    return "100000" if name in ("jsproj.timeout", "jsproj.memory_limit") else str(evil / "hostile")


def prepare_attacker(app: psycopg.Connection, evil: Path) -> None:
    """What the application role can make for itself: start procedures in both languages, in pg_temp."""
    for language, object_ in (("plv8", "plv8"), ("pljs", "pljs")):
        app.execute(
            f"create function pg_temp.jsproj_evil_{language}() returns void language {language} as $$ "
            f"{object_}.execute('create table public.pwned_{language} (x int)'); "
            f"{object_}.execute('grant all on all tables in schema js_{language} to current_user'); $$"
        )


def set_hostile(app: psycopg.Connection, settings: list, evil: Path) -> dict[str, str]:
    """Set each setting the role may set; returns name -> what happened (the value, or why it was refused)."""
    outcome = {}
    for name, vartype, low, high, values, boot in settings:
        value = hostile(name, vartype, low, high, values, boot, evil)
        try:
            app.execute("select set_config(%s, %s, false)", (name, value))
            outcome[name] = value
        except psycopg.errors.InsufficientPrivilege:
            outcome[name] = "refused: superuser-only"
    return outcome


def append(app: psycopg.Connection, schema: str, event: dict[str, object]) -> None:
    message = {"id": "s", "type": "T", "data": event}
    app.execute(sql.SQL("select {}.pge_append(%s::jsonb)").format(sql.Identifier(schema)), (json.dumps(message),))


def counted(app: psycopg.Connection, schema: str) -> object:
    query = sql.SQL("select data ->> 'n' from {}.pge_aggregates where name = 'Counter'").format(sql.Identifier(schema))
    row = app.execute(query).fetchone()
    return None if row is None else int(row[0])


def assert_nothing_granted(boundary: Boundary) -> None:
    with psycopg.connect(boundary.admin) as admin:
        pwned = admin.execute("select relname from pg_class where relname like 'pwned%'").fetchall()
        assert pwned == [], "a start procedure of the application's ran as the owner"
        grants = admin.execute(
            """select table_schema, table_name, privilege_type from information_schema.role_table_grants
               where grantee = %s and not (table_name = 'pge_aggregates' and privilege_type = 'SELECT')""",
            (boundary.role,),
        ).fetchall()
        assert grants == [], "the application role gained privileges"
        member = admin.execute("select pg_has_role(%s, 'jsproj', 'member')", (boundary.role,)).fetchone()
        assert member == (False,)
    assert not (boundary.evil_path / "imported").exists(), "the server's Python imported the application's package"


@pytest.mark.parametrize(
    "libraries_first",
    [
        False,
        pytest.param(True, marks=pytest.mark.slow),
    ],  # (the second: every setting again, the libraries loaded first)
    ids=["placeholders", "libraries-loaded"],
)
def test_no_setting_a_session_can_change_reaches_what_runs_as_the_owner(
    boundary: Boundary, libraries_first: bool
) -> None:
    settings = settings_to_attack(boundary.admin)
    assert {"plv8.start_proc", "pljs.start_proc", "plv8.execution_timeout", "pljs.execution_timeout"} <= {
        row[0] for row in settings
    }, "the languages' settings are all enumerated"
    with psycopg.connect(boundary.app, autocommit=True) as app:
        app.execute("set statement_timeout = '60s'")  # the test's own bound: never reached when jsproj's limit holds
        prepare_attacker(app, boundary.evil_path)
        if libraries_first:  # the library loaded by the application first: its settings are real ones then
            app.execute("select plv8_version(), pljs_version()")
        outcome = set_hostile(app, settings, boundary.evil_path)
        assert outcome["plv8.memory_limit"] == outcome["pljs.memory_limit"] == "refused: superuser-only"
        for schema in ("js_plv8", "js_pljs", "py_inline"):
            append(app, schema, {"$type": "Add", "n": 2})
            assert counted(app, schema) == 2, f"{schema}: the deployed projections ran"
            with pytest.raises(psycopg.Error) as stopped:
                append(app, schema, {"$type": "Spin"})
            message = stopped.value.diag.message_primary
            assert message == "projection Spinner ran past the time limit of 1 s", f"{schema}: jsproj's limit, not 60 s"
            append(app, schema, {"$type": "Add", "n": 3})
            assert counted(app, schema) == 5, f"{schema}: the session goes on"
        with pytest.raises(psycopg.Error) as guarded:
            append(app, "py_engine", {"$type": "Add", "n": 1})
        assert guarded.value.sqlstate == "JP503", "jsproj.inline_engine does not skip the Python engine's guard"
    assert_nothing_granted(boundary)


def test_a_language_without_an_execution_timeout_is_refused_at_deploy(dsn: str) -> None:
    """The check deploy runs once the language is loaded: a build without the setting has no time limit."""
    with EventStore(dsn, max_size=1) as store, store.connection() as conn:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("select pge_require_execution_timeout('nolanguage')")
    assert refused.value.sqlstate == "JP505"
    assert isinstance(translate(refused.value, "deploy"), errors.UnlimitedLanguageError)
    assert "nolanguage here has no nolanguage.execution_timeout" in refused.value.diag.message_primary


def test_jsproj_functions_a_session_ran_first_under_its_own_search_path_do_not_change_what_the_owner_runs(
    boundary: Boundary,
) -> None:
    """PL/pgSQL keeps its plans for the session (pge_route, pge_document_table, pge_append_records): a plan made
    when the application called a function itself, under a search path of its own, must not be what runs inside
    pge_append as the owner; and the Python engine's own entry is not the application's."""
    message = json.dumps({"id": "s", "type": "T", "data": {"$type": "Add", "n": 1}})
    calls = {
        "pge_document_table": ("select {}.pge_document_table('Counter')", ()),
        "pge_route": ("select {}.pge_route(array['s'], array['T'], array['Add'], array['Counter'])", ()),
        "pge_append_records": ("select {}.pge_append_records(%s::jsonb)", (message,)),
    }
    with psycopg.connect(boundary.app, autocommit=True) as app:
        app.execute("set statement_timeout = '60s'")
        outcome = {}
        for schema in STORES:
            app.execute(sql.SQL("set search_path = pg_temp, {}, public").format(sql.Identifier(schema)))
            for name, (query, params) in calls.items():
                try:
                    app.execute(sql.SQL(query).format(sql.Identifier(schema)), params)
                    outcome[schema, name] = "ran"
                except psycopg.errors.InsufficientPrivilege:
                    outcome[schema, name] = "refused"
        assert {outcome[schema, "pge_append_records"] for schema in STORES} == {"refused"}
        app.execute("reset search_path")
        for schema in ("js_plv8", "js_pljs", "py_inline"):
            append(app, schema, {"$type": "Add", "n": 2})
            assert counted(app, schema) == 2, f"{schema}: only the owner's append counted"
    assert_nothing_granted(boundary)
