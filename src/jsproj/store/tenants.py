"""A store per tenant: ``store.for_tenant(name)`` routes to the tenant's own store, a schema or a database.

Where tenants live is a :class:`Placement`: ``schema:tenant_{tenant}`` (the
default: a schema per tenant in the store's database) or
``database:app_{tenant}`` (a database per tenant on the store's server,
reached with the store's DSN but that database's name). A tenant's name is
lowercase letters, digits and ``_`` (at most 40), so that the schema or
database it names needs no quoting and cannot be another's. A tenant's store
is opened once and kept (its pool starts empty and closes with the store
that opened it); ``create=True`` makes and migrates a store the tenant does
not have yet. One daemon serves them all: ``jsproj daemon --all-stores``
(docs/daemon.md#many-stores-one-daemon).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from jsproj.errors import InvalidNameError, SchemaMissingError
from jsproj.store.identifiers import check_schema

TENANT = re.compile(r"[a-z0-9][a-z0-9_]{0,39}")
DEFAULT_PLACEMENT = "schema:tenant_{tenant}"


@dataclass(frozen=True)
class Placement:
    """Where each tenant's store is: a schema or a database, named by ``pattern`` (with ``{tenant}``)."""

    kind: Literal["schema", "database"]
    pattern: str

    @classmethod
    def parse(cls, text: str) -> Placement:
        """``schema:PATTERN`` or ``database:PATTERN``, the pattern naming one place per tenant."""
        kind, _, pattern = text.partition(":")
        if kind not in ("schema", "database") or pattern.count("{tenant}") != 1 or pattern == "{tenant}":
            raise InvalidNameError(f"tenants {text!r}: give schema:PATTERN or database:PATTERN, the pattern "
                                   "with {tenant} once and a fixed part (as schema:tenant_{tenant}: a tenant's name "
                                   "alone could name another's place)")  # fmt: skip
        check_schema(pattern.replace("{tenant}", "x"))
        return cls(kind, pattern)  # type: ignore[arg-type]

    def place(self, tenant: str) -> str:
        """The schema or database of ``tenant`` (a valid tenant name, else :class:`InvalidNameError`)."""
        if not isinstance(tenant, str) or not TENANT.fullmatch(tenant):
            raise InvalidNameError(f"tenant name {tenant!r}: use lowercase letters, digits and _ (at most 40), "
                                   "starting with a letter or digit")  # fmt: skip
        return check_schema(self.pattern.replace("{tenant}", tenant))


@dataclass(frozen=True)
class Where:
    """A tenant's store: the DSN to reach its database, and its schema."""

    dsn: str
    schema: str


def locate(placement: Placement, dsn: str, schema: str, tenant: str) -> Where:
    """Where ``tenant``'s store is, for a store at ``dsn`` in ``schema`` (a database per tenant: the same
    schema in each)."""
    place = placement.place(tenant)
    if placement.kind == "schema":
        taken = {schema, "public", "information_schema"}
    else:
        taken = {str(conninfo_to_dict(dsn).get("dbname") or ""), "postgres", "template0", "template1"}
    if place in taken or place.startswith("pg_"):
        raise InvalidNameError(f"tenant {tenant!r} would be {placement.kind} {place}, which is not a tenant's "
                               "(the store's own, or PostgreSQL's)")  # fmt: skip
    if placement.kind == "schema":
        return Where(dsn, place)
    return Where(make_conninfo(dsn, dbname=place), schema)


def exists(dsn: str, placement: Placement, where: Where) -> bool:
    """Whether the tenant's store is there (its database, and jsproj's tables in its schema)."""
    if placement.kind == "database":
        with psycopg.connect(dsn) as conn:
            found = conn.execute("select from pg_database where datname = %s", (conninfo_to_dict(where.dsn)["dbname"],))
            if found.fetchone() is None:
                return False
    with psycopg.connect(where.dsn) as conn:
        row = conn.execute("select to_regclass(format('%%I.pge_engine', %s::text)) is not null", (where.schema,))
        return bool(row.fetchone() == (True,))


def create_database(dsn: str, where: Where) -> None:
    """Make the tenant's database (the role needs CREATEDB); one made meanwhile by another is as good."""
    name = conninfo_to_dict(where.dsn)["dbname"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(str(name))))
        except psycopg.errors.DuplicateDatabase:
            pass


class Tenants:
    """The tenants' stores a store has opened, by name; ``open_store(where)`` opens one."""

    def __init__(self, placement: Placement, dsn: str, schema: str, open_store: Callable[[Where], Any]) -> None:
        self.placement, self.dsn, self.schema = placement, dsn, schema
        self._open = open_store
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()

    def store(self, tenant: str, *, create: bool) -> Any:
        """``tenant``'s store, opened once; ``create``: made and migrated if it has none yet."""
        where = locate(self.placement, self.dsn, self.schema, tenant)
        with self._lock:
            if tenant in self._stores:
                return self._stores[tenant]
            if not exists(self.dsn, self.placement, where):
                if not create:
                    raise SchemaMissingError(f"tenant {tenant} has no store ({self.placement.kind} "
                                             f"{self.placement.place(tenant)}): for_tenant({tenant!r}, create=True) "
                                             "makes one")  # fmt: skip
                if self.placement.kind == "database":
                    create_database(self.dsn, where)
            opened = self._open(where)
            if create:
                try:
                    opened.migrate()
                except BaseException:
                    opened.close()
                    raise
            self._stores[tenant] = opened
            return opened

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()
