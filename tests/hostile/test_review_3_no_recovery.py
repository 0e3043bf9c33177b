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

import psycopg
import pytest
from psycopg.types.json import Jsonb

from roles import partitioned_shop


@pytest.fixture
def shop(dsn: str):
    with partitioned_shop(dsn, "r3n") as dsns:
        yield dsns


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
