"""Review 3: an erasure says it erased nothing, and the personal data stays, when the stream's events lie in a
detached partition.

docs/partitioning.md: ``jsproj partition-log --detach-before`` keeps the detached partitions' events "in tables of
their own (``pge_events_0``, ...)", in the store's schema, readable by whoever was granted the log. docs/security.md:
"an erasure leaves nothing of what it erased"; lifecycle.md says nothing of detached partitions. ``jsproj erase
customer-42`` then finds no event, reports ``events: 0`` without a word, and the customer's data stays in
``pge_events_0``: an erasure request answered "done" that erased nothing. It must erase there too, or refuse,
naming the detached tables that hold the stream's events.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from jsproj.projections.erasure import erase
from jsproj.store.partitioning import detach_before, partition_log
from jsproj.store.sync import EventStore

PERSONAL = "secret-review3@example.com"


def test_an_erasure_does_not_leave_the_data_of_a_detached_partition_and_say_nothing(dsn: str) -> None:
    with EventStore(dsn) as store:
        store.append({"id": "customer-42", "type": "Customer", "data": {"$type": "Registered", "email": PERSONAL}})
    partition_log(dsn, size=64)
    with psycopg.connect(dsn, autocommit=True) as conn:
        bound = conn.execute("select made_to from pge_log_layout").fetchone()[0]
        conn.execute("select setval('pge_events_position_seq', %s)", (bound + 10,))
        while conn.execute("select made_to from pge_log_layout").fetchone()[0] < bound + 200:
            conn.execute("select pge_log_add_partition()")
    with EventStore(dsn) as store:
        store.append({"id": "other", "type": "T", "data": {"$type": "Made"}})
    detached = detach_before(dsn, "public", bound)  # the partitions made by the conversion, the stream's among them
    assert detached, "nothing was detached"
    with EventStore(dsn) as store:
        try:
            erased = erase(store, "customer-42", reason="request review-3")
        except Exception:  # noqa: BLE001 -- a refusal naming the detached tables is an answer too
            return
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "select c.oid::regclass::text from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'"
        ).fetchall()
        left = []
        for (table,) in tables:
            query = sql.SQL("select count(*) from {} t where t::text like %s").format(sql.Identifier(table))
            if conn.execute(query, (f"%{PERSONAL}%",)).fetchone()[0]:
                left.append(table)
    assert not left, f"the erasure reported {erased} and the customer's data is still in {left}"
