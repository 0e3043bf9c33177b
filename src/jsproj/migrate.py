"""Schema migrations: the numbered SQL files in ``sql/migrations``, applied once each.

A migration runs with ``search_path`` set to the store's schema; inside
function bodies ``@schema@`` stands for the quoted schema name.

``migrate()`` is idempotent and safe to run from several processes at once
(an advisory lock serialises them). Applied migrations are recorded in
``pge_migrations`` with a checksum; a changed file that was already applied
is an error, never silently re-run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg
from psycopg import sql

from jsproj.errors import MigrationError
from jsproj.identifiers import check_schema

_HERE = Path(__file__).resolve().parent
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 0x6A7370726F6A  # "jsproj"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


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


def migrate(conn: psycopg.Connection, schema: str = "public") -> list[Migration]:
    """Bring ``schema`` up to date in one transaction; returns the migrations applied now."""
    check_schema(schema)
    applied_now = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("set local search_path = {}").format(sql.Identifier(schema)))
        conn.execute(
            """create table if not exists pge_migrations (
                   version int primary key, name text not null, checksum text not null,
                   applied_at timestamptz not null default now())"""
        )
        applied = dict(conn.execute("select version, checksum from pge_migrations").fetchall())
        known = {m.version for m in migrations()}
        unknown = sorted(set(applied) - known)
        if unknown:
            raise MigrationError(
                f"schema {schema} has migrations this jsproj does not know ({unknown}): it was made by a newer release"
            )
        for migration in migrations():
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    name = f"{migration.version:04d}_{migration.name}"
                    raise MigrationError(f"migration {name} was changed after it was applied to {schema}")
                continue
            conn.execute(migration.sql.replace("@schema@", sql.Identifier(schema).as_string(conn)))
            conn.execute(
                "insert into pge_migrations (version, name, checksum) values (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            applied_now.append(migration)
    return applied_now


def applied_versions(conn: psycopg.Connection, schema: str = "public") -> list[int]:
    """The migration versions applied to ``schema`` (empty when it has none)."""
    check_schema(schema)
    exists = conn.execute("select to_regclass(%s)", (f'"{schema}".pge_migrations',)).fetchone()
    if not exists or exists[0] is None:
        return []
    query = sql.SQL("select version from {}.pge_migrations order by version").format(sql.Identifier(schema))
    return [row[0] for row in conn.execute(query).fetchall()]
