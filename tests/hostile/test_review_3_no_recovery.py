"""Review 3: once appends have run past the last partition, the store never makes another by itself: every append
fails for good (until the owner runs ``jsproj partition-log --add`` or a message of more than 64 events comes).

docs/partitioning.md: "a store without a daemon ... never runs out of partitions"; a partition the append cannot
make is "a warning, never the append's failure" and "the next look tries again". But an append of a few events
looks only after its insert, which fails once the log has run past the last partition: no later append ever looks
again. How the log gets there (below, the way of test_review_3_held_partition.py: an application session that
holds open the transaction which made the next partitions, then rolls it back; or any run of looks that could not
get their lock in 50 ms while the headroom filled) does not matter: afterwards nothing comes back.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from jsproj.store.partitioning import partition_log
from jsproj.store.sync import EventStore


def as_role(dsn: str, role: str) -> str:
    return re.sub(r"user=\S+", f"user={role}", dsn)


@pytest.fixture
def shop(dsn: str):
    with psycopg.connect(dsn, autocommit=True) as admin:
        for role in ("r3n_shop_owner", "r3n_shop_app"):
            if not admin.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
                admin.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
        database = admin.execute("select current_database()").fetchone()[0]
        admin.execute(sql.SQL("grant create on database {} to r3n_shop_owner").format(sql.Identifier(database)))
    owner = as_role(dsn, "r3n_shop_owner")
    with EventStore(owner, schema="shop", max_size=1) as store:
        store.migrate()
    partition_log(owner, schema="shop", size=64)
    with psycopg.connect(owner, autocommit=True) as conn:  # the documented grants
        conn.execute("grant usage on schema shop to r3n_shop_app")
        conn.execute("grant execute on function shop.pge_append(jsonb) to r3n_shop_app")
        conn.execute("select setval('shop.pge_events_position_seq', 1000000)")  # as a million appends would
    yield owner, as_role(dsn, "r3n_shop_app")
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("drop schema shop cascade")


def test_appends_come_back_once_the_transaction_that_held_the_partitions_ends(shop) -> None:
    _owner, app = shop
    hold = psycopg.connect(app)
    held = {"id": "held", "type": "Order", "data": [{"$type": "P"}] * 65}
    hold.execute("select shop.pge_append(%s)", (Jsonb(held),))
    with psycopg.connect(app, autocommit=True) as other:
        other.execute("set statement_timeout = '10s'")
        for n in range(80):  # runs past the committed partitions (those appends fail: the other test's break)
            try:
                message = {"id": f"o-{n}", "type": "T", "data": [{"$type": "P"}] * 5}
                other.execute("select shop.pge_append(%s)", (Jsonb(message),))
            except psycopg.Error:
                pass
        hold.rollback()  # the holder is gone
        hold.close()
        failures = []
        for n in range(200):  # ordinary single-event appends, over three multiples of 64 positions
            try:
                message = {"id": f"s-{n}", "type": "T", "data": [{"$type": "P"}]}
                other.execute("select shop.pge_append(%s)", (Jsonb(message),))
            except psycopg.Error as error:
                failures.append((n, str(error).splitlines()[0]))
        # By themselves: the first append to take the position sequence across a multiple of 64 makes the
        # partitions (failed appends move the sequence too), so at most 64 fail after the holder is gone.
        late = [(n, why) for n, why in failures if n >= 64]
        assert not late, f"appends still fail after 64 tries ({len(failures)} failed): {late[-1]}"
