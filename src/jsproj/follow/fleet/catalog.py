"""One database's stores, as a daemon serving many sees them: which schemas are jsproj stores, which have work.

A :class:`Catalog` keeps a connection of its own to the database (autocommit,
listening for appends), finds the stores there (every schema with jsproj's
tables, or those of a list), and asks the ones it names whether a daemon has
anything to do there (``pge_daemon_work()``, sql/functions/async.sql) -- a
few hundred stores in one statement -- so that the fleet connects only to
stores with work. It reconnects on its next use after losing the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from jsproj.follow.engine import Waker
from jsproj.store.identifiers import IDENTIFIER, MAX_IDENTIFIER

ASKED_AT_ONCE = 200  # stores asked for work in one statement

# Every schema with jsproj's tables the role may use: whether the fleet's own role owns it and its function that
# says whether there is work (a fleet runs a store's SQL with its own rights, so it serves no store another role
# owns: docs/daemon.md#many-stores-one-daemon), and whether it has that function (a store made by a jsproj
# before it, not migrated since, has not).
_STORES = """
select n.nspname, n.nspowner = r.oid and coalesce(f.proowner = r.oid, true), f.oid is not null
from pg_class c join pg_namespace n on n.oid = c.relnamespace
join pg_roles r on r.rolname = current_user
left join pg_proc f on f.oid = to_regprocedure(format('%I.pge_daemon_work()', n.nspname))
where c.relname = 'pge_engine' and c.relkind = 'r' and has_schema_privilege(n.oid, 'USAGE')
order by n.nspname
"""


@dataclass(frozen=True, order=True)
class StoreKey:
    """A store: its database (by the DSN it is reached with, and its name) and schema."""

    dsn: str
    database: str
    schema: str

    @property
    def label(self) -> str:
        """How logs, metrics and status name it: ``database.schema``."""
        return f"{self.database}.{self.schema}"


@dataclass(frozen=True)
class Found:
    """What a look at the database found: the stores to serve, and those it leaves alone, each with why."""

    stores: tuple[StoreKey, ...]
    left: tuple[tuple[StoreKey, str], ...]


def _why_not(schema: str, own: bool, migrated: bool) -> str | None:
    """Why the fleet leaves the store in ``schema`` alone (None: it serves it)."""
    if not IDENTIFIER.match(schema) or len(schema.encode()) > MAX_IDENTIFIER:
        return "its schema's name is not a safe identifier (letters, digits and _): not served"
    if not own:
        return ("another role owns it (or its pge_daemon_work): served only by a daemon running as its owner, never "
                "with this one's rights")  # fmt: skip
    if not migrated:
        return "it is not migrated to this jsproj: `jsproj migrate --schema` it; not served until then"
    return None


class Catalog:
    """The stores of the database at ``dsn``: all of them (``schemas`` None), or those of ``schemas``."""

    def __init__(self, dsn: str, schemas: Iterable[str] | None = None) -> None:
        self.dsn = dsn
        self.schemas = frozenset(schemas) if schemas is not None else None
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The catalog's connection (autocommit, listening for appends), opened again if it was lost."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True, application_name="jsproj daemon fleet")
            Waker.listen(self._conn)
        return self._conn

    @property
    def open(self) -> bool:
        """Whether its connection is open now."""
        return self._conn is not None and not self._conn.closed

    def find(self) -> Found:
        """The stores there now."""
        conn = self.connection
        database = conn.info.dbname
        stores, left = [], []
        for schema, own, migrated in conn.execute(_STORES):
            if self._wanted(schema):
                key, why = StoreKey(self.dsn, database, schema), _why_not(schema, own, migrated)
                stores += [key] if why is None else []
                left += [] if why is None else [(key, why)]
        return Found(tuple(stores), tuple(left))

    def missing(self, found: Found) -> list[str]:
        """The schemas asked for by name that are no store (none when serving every store)."""
        there = {key.schema for key in found.stores} | {key.schema for key, _ in found.left}
        return sorted(self.schemas - there) if self.schemas is not None else []

    def with_work(self, schemas: Sequence[str]) -> tuple[set[str], dict[str, str]]:
        """Those of ``schemas`` where a daemon has something to do now; and those that failed to say, with why
        (a statement for many at once; when it fails, one per store, so that one broken store, renamed or
        dropped meanwhile, holds back no other)."""
        busy: set[str] = set()
        failed: dict[str, str] = {}
        for start in range(0, len(schemas), ASKED_AT_ONCE):
            chunk = list(schemas[start : start + ASKED_AT_ONCE])
            try:
                busy.update(self._ask(chunk))
            except psycopg.Error:
                for schema in chunk:
                    try:
                        busy.update(self._ask([schema]))
                    except psycopg.Error as exc:
                        failed[schema] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return busy, failed

    def _ask(self, schemas: list[str]) -> list[str]:
        asks = sql.SQL(" union all ").join(
            sql.SQL("select {}::text where {}.pge_daemon_work()").format(sql.Literal(s), sql.Identifier(s))
            for s in schemas
        )
        return [row[0] for row in self.connection.execute(asks)]

    def drain(self) -> bool:
        """Whether events were appended (notifications came) since the last look; does not wait."""
        return any(True for _ in self.connection.notifies(timeout=0))

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    def _wanted(self, schema: str) -> bool:
        return self.schemas is None or schema in self.schemas
