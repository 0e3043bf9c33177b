"""The store's schema: versioned migrations, then the functions, by one SQL script.

Two kinds of SQL file, in ``sql/``:

- ``migrations/NNNN_name.sql``: schema changes only (tables, columns,
  indexes, the rows they need), each applied once and recorded in
  ``pge_migrations`` (version, name, sha256 checksum of the file's text).
  A file changed after it was applied is an error, never re-run; a
  recorded version this jsproj does not know (a newer release's) is an
  error too.
- ``functions/*.sql``: every ``pge_*`` function, each defined in exactly
  one file (grouped by concern), as ``create or replace`` statements with
  the grants, revokes and settings that go with them; all idempotent.
  They are applied after the migrations, in file-name order, whenever a
  file's checksum differs from the one recorded in ``pge_function_files``,
  and all of them whenever a migration was applied in the same run. To
  change a function, edit its file. A ``language sql`` function is checked
  when it is created: it may use only functions of its own file (defined
  above it) or of a file sorted before it.
- What ``create or replace`` cannot do (change a function's arguments,
  result or out parameters, or remove a function) is a versioned
  migration that drops the old function (``drop function if exists
  pge_x(old argument types)``), with the new definition in its functions
  file.

The baseline: ``0006_baseline`` creates the tables that migrations
0001-0006 of the unreleased versions made (up to commit c25e46e), which
restated whole functions at each change. A schema with no migrations gets
the baseline. A schema with all of versions 1-6 recorded (made by those
versions, whatever their checksums) is taken to be at the baseline: rows
1-5 are deleted and row 6 becomes the baseline's, then the functions
files replace every function. A schema with some of 1-5 but not all of 1-6
predates the baseline: a MigrationError (migrate it to version 6 with the
version that made it, or make it afresh).

One script does all this (:func:`schema_script`): ``migrate()`` runs it in
one transaction and ``jsproj sql`` (deploy.deployment_sql) embeds it for a
DBA's psql. It takes an advisory lock, so several processes may migrate at
once. A migration runs with ``search_path`` set to the store's schema;
inside function bodies ``@schema@`` stands for the quoted schema name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from jsproj.errors import MigrationError
from jsproj.store.identifiers import check_schema

_HERE = Path(__file__).resolve().parents[1]  # the jsproj package folder
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
FUNCTIONS_FILE = re.compile(r"^[a-z0-9_]+\.sql$")
LOCK_KEY = 0x6A7370726F6A  # "jsproj"
#: The baseline migration's version, and the unreleased versions before it that it stands for.
BASELINE = 6
SUPERSEDED = tuple(range(1, BASELINE))
#: The SQLSTATE the script raises when the schema cannot be migrated (registered on MigrationError).
MIGRATION_ERROR = next(iter(MigrationError.sqlstates))
# The dollar-quote tag of the script's blocks: no SQL file may contain it.
_TAG = "$jsproj_schema$"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class FunctionsFile:
    """A file of ``sql/functions``: ``create or replace`` statements, applied again when it changes."""

    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class Applied(list[Migration]):
    """The migrations ``migrate()`` applied (a list), and the functions files it applied (``functions``)."""

    def __init__(self, migrations: list[Migration], functions: list[str]) -> None:
        super().__init__(migrations)
        self.functions = functions


@cache
def sql_dir() -> Path:
    """The folder of jsproj's SQL (``sql/`` in the repository, ``jsproj/sql`` in a wheel)."""
    for candidate in (_HERE / "sql", _HERE.parents[1] / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise FileNotFoundError("jsproj's SQL files are missing")


def migrations() -> list[Migration]:
    """Every migration, in version order."""
    found = []
    for path in sorted((sql_dir() / "migrations").iterdir()):
        match = MIGRATION_FILE.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), path.read_text("utf-8")))
    return found


def functions_files() -> list[FunctionsFile]:
    """Every file of ``sql/functions``, in the order they are applied (by name)."""
    folder = sql_dir() / "functions"
    paths = sorted(folder.iterdir()) if folder.is_dir() else []
    return [FunctionsFile(p.name, p.read_text("utf-8")) for p in paths if FUNCTIONS_FILE.match(p.name)]


def _literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings, PostgreSQL's default)."""
    return "'" + text.replace("'", "''") + "'"


def _raise(message: str) -> str:
    """A PL/pgSQL statement raising MigrationError's SQLSTATE with ``message`` (a SQL text expression)."""
    return f"raise exception using errcode = '{MIGRATION_ERROR}', message = {message};"


def _block(*lines: str) -> str:
    return "\n".join([f"do {_TAG}", *lines, f"{_TAG};"])


def _checks(schema: str, known: list[int]) -> str:
    """The block refusing a newer release's schema and accepting (or refusing) one from before the baseline."""
    baseline = next(m for m in migrations() if m.version == BASELINE)
    newer = (
        "format('schema %s has migrations this jsproj does not know (%s): it was made by a newer release', "
        f"{_literal(schema)}, v_versions)"
    )
    older = (
        f"format('schema %s predates migration {baseline.label}: it has migrations %s of the versions "
        f"1-{BASELINE} that the baseline stands for; migrate it to version {BASELINE} with the jsproj that "
        f"made it, or make it afresh', {_literal(schema)}, v_versions)"
    )
    superseded = "array[" + ", ".join(map(str, SUPERSEDED)) + "]"
    return _block(
        "declare v_versions text;",
        "begin",
        "    select '[' || string_agg(version::text, ', ' order by version) || ']' into v_versions",
        f"    from pge_migrations where version <> all (array[{', '.join(map(str, known))}]);",
        f"    if v_versions is not null then {_raise(newer)} end if;",
        "    select '[' || string_agg(version::text, ', ' order by version) || ']' into v_versions",
        f"    from pge_migrations where version = any ({superseded} || {BASELINE});",
        f"    if (select count(*) from pge_migrations where version = any ({superseded})) = {len(SUPERSEDED)}",
        f"       and exists (select from pge_migrations where version = {BASELINE}) then",
        f"        delete from pge_migrations where version = any ({superseded});",
        f"        update pge_migrations set name = {_literal(baseline.name)}, checksum = {_literal(baseline.checksum)}",
        f"        where version = {BASELINE};",
        "        perform set_config('jsproj.migrated', 'yes', true);  -- the functions files replace the old ones",
        f"    elsif exists (select from pge_migrations where version = any ({superseded})) then {_raise(older)}",
        "    end if;",
        "end",
    )


def _migration_block(migration: Migration, schema: str, schema_sql: str) -> str:
    changed = _literal(f"migration {migration.label} was changed after it was applied to {schema}")
    recorded = f"(select checksum from pge_migrations where version = {migration.version})"
    return _block(
        "begin",
        f"    if {recorded} is null then",
        f"        execute {_literal(migration.sql.replace('@schema@', schema_sql))};",
        "        insert into pge_migrations (version, name, checksum)",
        f"        values ({migration.version}, {_literal(migration.name)}, {_literal(migration.checksum)});",
        "        perform set_config('jsproj.migrated', 'yes', true);",
        f"    elsif {recorded} <> {_literal(migration.checksum)} then {_raise(changed)}",
        "    end if;",
        "end",
    )


def _functions_block(file: FunctionsFile, schema_sql: str) -> str:
    recorded = f"(select checksum from pge_function_files where file = {_literal(file.name)})"
    return _block(
        "begin",
        f"    if {recorded} is distinct from {_literal(file.checksum)}",
        "       or current_setting('jsproj.migrated', true) = 'yes' then",
        f"        execute {_literal(file.sql.replace('@schema@', schema_sql))};",
        "        insert into pge_function_files (file, checksum)",
        f"        values ({_literal(file.name)}, {_literal(file.checksum)})",
        "        on conflict (file) do update set checksum = excluded.checksum, applied_at = now();",
        "    end if;",
        "end",
    )


def schema_script(schema: str = "public") -> str:
    """The SQL bringing ``schema`` up to date, for one transaction: what ``migrate()`` runs and ``jsproj sql`` prints.

    The schema, the two record tables, one guarded block per migration and
    one per functions file; a changed migration or an unknown version
    raises SQLSTATE JPM01 with MigrationError's message.
    """
    check_schema(schema)
    schema_sql = sql.Identifier(schema).as_string()
    known = sorted({*SUPERSEDED, *(m.version for m in migrations())})
    for text in [m.sql for m in migrations()] + [f.sql for f in functions_files()]:
        if _TAG in text:
            raise MigrationError(f"a SQL file of jsproj contains {_TAG}, the tag of the schema script's blocks")
    parts = [
        f"-- jsproj's schema {schema}: migrations, then functions (src/jsproj/store/migrate.py)",
        # One migration at a time (the lock is the transaction's); no migration applied yet in this run.
        _block(
            "begin",
            f"    perform pg_advisory_xact_lock({LOCK_KEY});",
            "    perform set_config('jsproj.migrated', '', true);",
            "end",
        ),
        f"create schema if not exists {schema_sql};",
        f"set local search_path = {schema_sql};",
        "create table if not exists pge_migrations (version int primary key, name text not null,",
        "    checksum text not null, applied_at timestamptz not null default now());",
        "create table if not exists pge_function_files (file text primary key, checksum text not null,",
        "    applied_at timestamptz not null default now());",
        _checks(schema, known),
    ]
    for migration in migrations():
        parts += [f"-- migration {migration.label}", _migration_block(migration, schema, schema_sql)]
    for file in functions_files():
        parts += [f"-- functions/{file.name}", _functions_block(file, schema_sql)]
    # A functions file's `create or replace` resets a function's settings: pin them again (sql/functions/security.sql).
    parts += ["-- settings pinned (functions/security.sql)", _block("begin", "    perform pge_pin_settings();", "end")]
    return "\n".join(parts) + "\n"


Recorded = tuple[dict[int, str], dict[str, str]]


def _recorded(conn: psycopg.Connection, schema: str) -> Recorded:
    """The migrations (version: checksum) and the functions files (name: checksum) recorded in ``schema``."""
    found = conn.execute(
        "select to_regclass(%s), to_regclass(%s)", (f'"{schema}".pge_migrations', f'"{schema}".pge_function_files')
    ).fetchone()
    migrations_table, files_table = found if found is not None else (None, None)
    tables = sql.Identifier(schema)
    versions: dict[int, str] = {}
    files: dict[str, str] = {}
    if migrations_table is not None:
        query = sql.SQL("select version, checksum from {}.pge_migrations").format(tables)
        versions = dict(conn.execute(query).fetchall())
    if files_table is not None:
        query = sql.SQL("select file, checksum from {}.pge_function_files").format(tables)
        files = dict(conn.execute(query).fetchall())
    return versions, files


def _release() -> Recorded:
    """What a schema this release migrated records: every migration and functions file, with its checksum."""
    return {m.version: m.checksum for m in migrations()}, {f.name: f.checksum for f in functions_files()}


def migrate(conn: psycopg.Connection, schema: str = "public") -> Applied:
    """Bring ``schema`` up to date in one transaction; returns the migrations (and functions files) applied now.

    A schema that records exactly this release's migrations and functions files (checksums included) --
    every connect, deploy and command after the first -- costs two small reads, not PostgreSQL parsing the
    whole script (~20 ms on a new connection). Anything else runs the script, which applies or refuses.
    """
    check_schema(schema)
    try:
        with conn.transaction():
            # The lock first: a backend that read the catalog before waiting for another's migration keeps
            # what it read (a schema not there yet) until its next transaction.
            conn.execute("select pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            before = _recorded(conn, schema)
            if before == _release():
                return Applied([], [])
            conn.execute(schema_script(schema).encode())
            after = _recorded(conn, schema)
    except psycopg.Error as exc:
        if exc.sqlstate == MIGRATION_ERROR and exc.diag.message_primary:
            raise MigrationError(exc.diag.message_primary) from None
        raise
    applied = [m for m in migrations() if m.version in after[0].keys() - before[0].keys()]
    changed = [f.name for f in functions_files() if before[1].get(f.name) != after[1].get(f.name) or applied]
    return Applied(applied, changed)


def applied_versions(conn: psycopg.Connection, schema: str = "public") -> list[int]:
    """The migration versions applied to ``schema`` (empty when it has none)."""
    check_schema(schema)
    exists = conn.execute("select to_regclass(%s)", (f'"{schema}".pge_migrations',)).fetchone()
    if not exists or exists[0] is None:
        return []
    query = sql.SQL("select version from {}.pge_migrations order by version").format(sql.Identifier(schema))
    return [row[0] for row in conn.execute(query).fetchall()]


def recreate_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Drop ``schema`` with everything in it, and create it empty: for throwaway stores only (the demo's)."""
    conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
