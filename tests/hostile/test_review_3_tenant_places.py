"""Review 3: the tenant router accepts a placement with no fixed part (``schema:{tenant}``, ``database:{tenant}``),
and a tenant's name then names another place.

docs/daemon.md: "A tenant's name is lowercase letters, digits and _ (at most 40), so it can never name another
place". With ``tenants="schema:{tenant}"`` (accepted) the tenant ``public`` is the store in ``public`` (the
umbrella store itself) and the tenant ``information_schema`` gets a store migrated into PostgreSQL's
``information_schema``; with ``tenants="database:{tenant}"`` the tenant named after the application's own database
opens its store, and ``for_tenant("template1", create=True)`` migrates a store into template1, which every database
made afterwards then carries. The placement, or the names it yields, must keep a tenant in a place of its own.
"""

from __future__ import annotations

import psycopg
import pytest

from jsproj.errors import InvalidNameError, SchemaMissingError, StoreError
from jsproj.store.sync import EventStore

REFUSED = (InvalidNameError, SchemaMissingError, StoreError)


def test_a_bare_schema_placement_does_not_let_a_tenant_open_the_umbrella_store(dsn: str) -> None:
    with EventStore(dsn) as umbrella:
        umbrella.append({"id": "private-1", "type": "T", "data": {"$type": "Secret"}})
    try:
        with EventStore(dsn, tenants="schema:{tenant}") as store:
            tenant = store.for_tenant("public")
            seen = [e.stream_id for e in tenant.read_all()]
    except REFUSED:
        return
    pytest.fail(f"tenant 'public' opened the store in schema public and read its events: {seen}")


def test_a_bare_database_placement_does_not_let_a_tenant_open_another_database(dsn: str) -> None:
    database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]  # test_N: a valid tenant name
    with EventStore(dsn) as umbrella:
        umbrella.append({"id": "private-1", "type": "T", "data": {"$type": "Secret"}})
    try:
        with EventStore(dsn, tenants="database:{tenant}") as store:
            tenant = store.for_tenant(database)
            seen = [e.stream_id for e in tenant.read_all()]
    except REFUSED:
        return
    pytest.fail(f"tenant {database!r} opened the application's own database and read its events: {seen}")
