"""Roles of a test's own and a store owned by one: roles are the cluster's, so each test file names its own (a
prefix of its own), made when missing and kept for the session's other tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from jsproj.store.partitioning import partition_log
from jsproj.store.sync import EventStore


def as_role(dsn: str, role: str) -> str:
    """``dsn``, connecting as ``role``."""
    return re.sub(r"user=\S+", f"user={role}", dsn)


def login_roles(admin: psycopg.Connection, *roles: str) -> None:
    """Make the login ``roles`` that are missing (``admin``: a superuser's connection, in autocommit)."""
    for role in roles:
        if not admin.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
            admin.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))


@contextmanager
def partitioned_shop(
    dsn: str, prefix: str, *, grants: tuple[str, ...] = (), position: int | None = 1_000_000
) -> Iterator[tuple[str, str]]:
    """A store in schema ``shop`` owned by ``{prefix}_shop_owner``, its log partitioned by 64 events and its position
    sequence at ``position`` (a million: as a million appends would leave it; None: as it is), with the documented
    grants to ``{prefix}_shop_app`` (and ``grants``, run as the owner); yields the owner's and the application's
    DSNs, and drops the schema after."""
    owner_role, app_role = f"{prefix}_shop_owner", f"{prefix}_shop_app"
    with psycopg.connect(dsn, autocommit=True) as admin:
        login_roles(admin, owner_role, app_role)
        database = admin.execute("select current_database()").fetchone()[0]
        admin.execute(sql.SQL("grant create on database {} to {}").format(sql.Identifier(database),
                                                                          sql.Identifier(owner_role)))  # fmt: skip
    owner = as_role(dsn, owner_role)
    with EventStore(owner, schema="shop", max_size=1) as store:
        store.migrate()
    partition_log(owner, schema="shop", size=64)
    with psycopg.connect(owner, autocommit=True) as conn:  # the documented grants
        conn.execute(sql.SQL("grant usage on schema shop to {}").format(sql.Identifier(app_role)))
        conn.execute(sql.SQL("grant execute on function shop.pge_append(jsonb) to {}").format(sql.Identifier(app_role)))
        for grant in grants:
            conn.execute(grant)
        if position is not None:
            conn.execute("select setval('shop.pge_events_position_seq', %s)", (position,))
    try:
        yield owner, as_role(dsn, app_role)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("drop schema shop cascade")
