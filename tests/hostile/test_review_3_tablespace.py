"""Review 3: the application role chooses where the store's new partitions go.

docs/security.md: "The application role never gains the owner's rights, whatever it sets first"; the app role has
only the documented grants (deploy.md#privileges). docs/partitioning.md: the store makes the next partitions
itself, inside an append (``pge_append``, SECURITY DEFINER, acting as the owner). ``pge_append`` pins
``search_path`` and the JavaScript languages' settings, but not ``default_tablespace``: an application role that
sets it before appending makes the owner create the new partitions (and their indexes) in any tablespace the
*owner* may use -- e.g. the slow ``archive`` tablespace the DBA made for detached partitions
(partitioning.md#detaching-old-partitions), a right the application role does not have.
"""

from __future__ import annotations

import psycopg
import pytest

from roles import login_roles, partitioned_shop


@pytest.fixture
def shop(dsn: str):
    with psycopg.connect(dsn, autocommit=True) as admin:
        login_roles(admin, "r3t_shop_owner")
        if not admin.execute("select 1 from pg_tablespace where spcname = 'review3_archive'").fetchone():
            admin.execute("set allow_in_place_tablespaces = on")
            admin.execute("create tablespace review3_archive location ''")
        # The DBA's archive tablespace, for the owner's --detach-before --tablespace archive.
        admin.execute("grant create on tablespace review3_archive to r3t_shop_owner")
    try:
        with partitioned_shop(dsn, "r3t", grants=("grant select on shop.pge_aggregates to r3t_shop_app",),
                              position=None) as dsns:  # fmt: skip
            yield dsns
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("revoke create on tablespace review3_archive from r3t_shop_owner")


def test_the_application_role_cannot_choose_the_tablespace_of_new_partitions(shop) -> None:
    owner, app = shop
    with psycopg.connect(owner, autocommit=True) as conn:
        before = {
            r[0]
            for r in conn.execute(
                "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
                " where i.inhparent = 'shop.pge_events'::regclass"
            ).fetchall()
        }
        # Bring the log's end near the last partition (as a million appends would).
        conn.execute("select setval('shop.pge_events_position_seq', 1000000)")
    with psycopg.connect(app, autocommit=True) as conn:
        conn.execute("set default_tablespace = review3_archive")
        for n in range(8):
            message = {"id": f"x-{n}", "type": "Order", "data": [{"$type": "Placed"}] * 10}
            conn.execute("select shop.pge_append(%s::jsonb)", (psycopg.types.json.Jsonb(message),))
    with psycopg.connect(owner, autocommit=True) as conn:
        made = conn.execute(
            "select c.relname, coalesce(t.spcname, 'default') from pg_inherits i join pg_class c on c.oid = i.inhrelid"
            " left join pg_tablespace t on t.oid = c.reltablespace where i.inhparent = 'shop.pge_events'::regclass"
        ).fetchall()
        new = [(name, space) for name, space in made if name not in before]
        indexes = conn.execute(
            "select c.relname from pg_class c join pg_tablespace t on t.oid = c.reltablespace"
            " where c.relnamespace = 'shop'::regnamespace and t.spcname = 'review3_archive'"
        ).fetchall()
    assert new, "the appends made no partition ahead of need"
    assert all(space == "default" for _, space in new), f"partitions placed by the application role: {new}"
    assert not indexes, f"relations placed by the application role: {indexes}"
