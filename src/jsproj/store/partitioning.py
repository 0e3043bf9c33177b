"""The partitioned log: a store's ``pge_events`` turned, online, into a table range-partitioned by position, and
its old partitions detached (docs/partitioning.md).

The SQL is sql/functions/partitions.sql; this module drives what cannot be one transaction. The conversion
(:func:`partition_log`) is three steps, so that writers wait only for the last: a constraint ``check (position
< bound)`` added ``not valid`` (ACCESS EXCLUSIVE for an instant), validated (a scan of the log that holds no
writer: SHARE UPDATE EXCLUSIVE), then the switch (``pge_log_switch``: ACCESS EXCLUSIVE for a transaction of
catalog changes, milliseconds whatever the log's size), which attaches the old table as the first partition
without scanning it. Each ACCESS EXCLUSIVE is asked for with a ``lock_timeout``: while it waits (behind a long
read), appends queue behind it, so it gives up and tries again rather than hold them longer. A conversion that
cannot finish removes its constraint: the store is then as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from jsproj.errors import PartitioningError
from jsproj.store.identifiers import check_schema, search_path
from jsproj.store.translate import translate

#: Events per partition unless told: 3.5 GB with indexes at the 350 bytes an event of bench/scale.py's events.
DEFAULT_SIZE = 10_000_000
#: The smallest partition size (pge_log_layout's check): the store looks ahead every 64 positions.
MIN_SIZE = 64
#: The positions the old table may still take between the start of a conversion and its switch (the appends
#: during the validation's scan): the first partition ends at least this far past the last position.
DEFAULT_HEADROOM = 1_000_000
BOUND = "pge_events_partition_bound"


@dataclass(frozen=True)
class Partition:
    """A partition of the log: its table, its positions [lower, upper) (lower None: from the first), its
    tablespace (None: the database's default) and its size in bytes (heap, indexes, TOAST)."""

    name: str
    lower: int | None
    upper: int
    tablespace: str | None
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Conversion:
    """What :func:`partition_log` did: the first partition's end (``bound``), the partition made after it, the
    events the log held, and how long the validation (writers not held) and the switch (writers held) took,
    with the switch's attempts (each at most ``lock_timeout`` waiting for its lock)."""

    bound: int
    partition: str
    events: int
    validate_seconds: float
    switch_seconds: float
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        return {"bound": self.bound, "partition": self.partition, "events": self.events,
                "validateSeconds": self.validate_seconds, "switchSeconds": self.switch_seconds,
                "attempts": self.attempts}  # fmt: skip


@contextmanager
def _connection(dsn: str, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection working in the store's schema; database errors as jsproj's."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(search_path(check_schema(schema)))
            yield conn
    except psycopg.Error as exc:
        raise translate(exc, "partitioning the log") from exc


def partitions(dsn: str, schema: str = "public") -> list[Partition]:
    """The log's partitions, oldest first (none: it is one table)."""
    with _connection(dsn, schema) as conn:
        return _partitions(conn)


def _partitions(conn: psycopg.Connection[Any]) -> list[Partition]:
    rows = conn.execute("select name, lower, upper, tablespace, bytes from pge_log_partitions()").fetchall()
    return [Partition(*row) for row in rows]


def _partitioned(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("select pge_log_partitioned()").fetchone()
    return bool(row and row[0])


def partition_log(
    dsn: str,
    schema: str = "public",
    size: int = DEFAULT_SIZE,
    *,
    headroom: int | None = None,
    lock_timeout: float = 0.5,
    attempts: int = 60,
) -> Conversion:
    """Turn the store's log into a table partitioned by position, ``size`` events a partition, while appends
    and reads go on (the module's docstring says how, docs/partitioning.md what it holds). The first partition
    is the log as it was, up to a multiple of ``size`` at least ``headroom`` (default: the larger of ``size``
    and a million) past the last position taken. Raises PartitioningError when the log is partitioned already,
    the size is below 64, or the switch found no moment with its lock in ``attempts`` tries."""
    if not isinstance(size, int) or size < MIN_SIZE:
        raise PartitioningError(f"a partition holds at least {MIN_SIZE} events, not {size!r}")
    margin = max(size, DEFAULT_HEADROOM) if headroom is None else max(headroom, 1)
    with _connection(dsn, schema) as conn:
        if _partitioned(conn):
            raise PartitioningError("the log is partitioned already (jsproj partition-log --list shows how)")
        row = conn.execute(
            "select coalesce(pg_sequence_last_value(pg_get_serial_sequence('pge_events', 'position')), 0),"
            " (select count(*) from pge_events)"
        ).fetchone()
        assert row is not None
        last, events = int(row[0]), int(row[1])
        bound = (last + margin) // size * size + size
        _with_lock_timeout(conn, sql.SQL("alter table pge_events add constraint {} check (position < {}) not valid")
                           .format(sql.Identifier(BOUND), sql.Literal(bound)), lock_timeout, attempts)  # fmt: skip
        try:
            started = time.monotonic()
            conn.execute(sql.SQL("alter table pge_events validate constraint {}").format(sql.Identifier(BOUND)))
            validated = time.monotonic()
            switch = sql.SQL("select pge_log_switch({}, {})").format(sql.Literal(size), sql.Literal(bound))
            switched = _with_lock_timeout(conn, switch, lock_timeout, attempts)
        except BaseException:
            _drop_bound(conn, lock_timeout, attempts)
            raise
        conn.execute("analyze pge_events")  # the partitioned table's own statistics (SHARE UPDATE EXCLUSIVE)
    result, tries, seconds = switched
    return Conversion(bound, str(result["partition"]), events, round(validated - started, 6), seconds, tries)


def _with_lock_timeout(
    conn: psycopg.Connection[Any], statement: sql.Composed, lock_timeout: float, attempts: int
) -> tuple[Any, int, float]:
    """Run ``statement`` in a transaction of its own that waits at most ``lock_timeout`` for each lock, again
    (up to ``attempts`` times, a pause between) while it cannot have them: its first row's first value, the
    attempts, and the seconds of the transaction that succeeded."""
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("set local lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout * 1000)}ms"))
                )
                started = time.monotonic()
                cursor = conn.execute(statement)
                row = cursor.fetchone() if cursor.description else None
            return (row[0] if row else None), attempt, round(time.monotonic() - started, 6)
        except psycopg.errors.LockNotAvailable:
            time.sleep(min(lock_timeout, 0.5))
    raise PartitioningError(
        f"pge_events was never free for {lock_timeout} s in {attempts} attempts (a long transaction holds it: "
        "see pg_locks): nothing was changed"
    )


def _drop_bound(conn: psycopg.Connection[Any], lock_timeout: float, attempts: int) -> None:
    """Remove the conversion's constraint (when it failed before its switch): the store as it was."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    statement = sql.SQL("alter table pge_events drop constraint if exists {}").format(sql.Identifier(BOUND))
    _with_lock_timeout(conn, statement, lock_timeout, attempts)


def add_partition(dsn: str, schema: str = "public") -> str:
    """Make the next partition now (the store makes them ahead of need by itself): its name."""
    with _connection(dsn, schema) as conn:
        row = conn.execute("select pge_log_add_partition()").fetchone()
        assert row is not None
        return str(row[0])


#: The readers that have not read a partition's last event yet (in readers' order, (tx_id, position)).
UNREAD = """select string_agg(who, ', ' order by who) from (
    select 'async projection ' || name as who from pge_projection_progress
    where (last_tx, last_position) < (%(tx)s::xid8, %(position)s)
    union all
    select 'subscription ' || name from pge_subscriptions
    where (last_tx, last_position) < (%(tx)s::xid8, %(position)s)
) as behind"""


def detach_before(dsn: str, schema: str, before: int, tablespace: str | None = None) -> list[Partition]:
    """Detach the partitions whose positions all precede ``before``: each becomes a table of its own (its
    events kept, out of every read, build and rebuild of the log), moved to ``tablespace`` if given. Never
    the partition being written, nor one an async projection or a subscription has not read to its end.
    ``DETACH ... CONCURRENTLY``: appends and reads go on."""
    with _connection(dsn, schema) as conn:
        if not _partitioned(conn):
            raise PartitioningError("the log is not partitioned: nothing to detach (jsproj partition-log --size N)")
        chosen = [p for p in _partitions(conn) if p.upper <= before]
        for partition in chosen:
            _check_detachable(conn, partition)
        for partition in chosen:
            table = sql.Identifier(partition.name)
            conn.execute(sql.SQL("alter table pge_events detach partition {} concurrently").format(table))
            conn.execute(sql.SQL("comment on table {} is {}").format(table, sql.Literal(
                f"jsproj: the events at positions before {partition.upper}, detached from pge_events")))  # fmt: skip
            if tablespace is not None:
                conn.execute(sql.SQL("alter table {} set tablespace {}").format(table, sql.Identifier(tablespace)))
    return [Partition(p.name, p.lower, p.upper, tablespace or p.tablespace, p.bytes) for p in chosen]


def _check_detachable(conn: psycopg.Connection[Any], partition: Partition) -> None:
    """Raise PartitioningError when the partition is still written to, or a reader has not read it all."""
    table = sql.Identifier(partition.name)
    query = sql.SQL(
        "select (select max(position) from pge_events) < {},"
        " (select row(tx_id::text, position) from {} order by tx_id desc, position desc limit 1)"
    )
    row = conn.execute(query.format(sql.Literal(partition.upper), table)).fetchone()
    assert row is not None
    if row[0] is not False:
        raise PartitioningError(f"{partition.name} holds the log's last positions: only older partitions are detached")
    if row[1] is None:
        return
    last_tx, last_position = row[1]
    behind = conn.execute(UNREAD, {"tx": last_tx, "position": int(last_position)}).fetchone()
    if behind and behind[0]:
        raise PartitioningError(
            f"{partition.name} holds events that {behind[0]} have not read yet: nothing was detached"
        )
