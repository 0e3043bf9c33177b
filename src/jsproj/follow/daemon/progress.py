"""Every statement on an async projection's progress: where each of its partitions has read to, and its status.

A row per (projection, partition): the last event applied, in the order
readers see (transaction, position), the events applied, and the status --
``build`` (documents to be built from scratch, then swapped in),
``running`` or ``stopped`` (with the error). A page moves the rows of the
units it served with a compare-and-set, in the page's transaction, so a
page whose progress moved meanwhile (a redeploy, a stop) is undone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from jsproj import errors

# advisory locks (LOCK_CLASS, hashtext(schema.unit)): who works on a projection's partition (per store: two stores in
# one database may have projections of the same name)
LOCK_CLASS = 1246974038
NOTIFY_LOCK_CLASS = 1246974039  # the appender that notifies daemons (sql/functions/async.sql)


@dataclass(frozen=True, order=True)
class Unit:
    """What one daemon works on at a time: a partition of an async projection (0 of 1 when not split)."""

    name: str
    partition: int = 0
    partitions: int = 1

    @property
    def lock_name(self) -> str:
        """The text the unit's advisory lock is keyed by (the projection's name for partition 0)."""
        return self.name if self.partition == 0 else f"{self.name}/{self.partition}"

    def __str__(self) -> str:
        return self.name if self.partitions == 1 else f"{self.name}[{self.partition}/{self.partitions}]"


def lock_key(name: str) -> sql.Composed:
    """The advisory lock of a unit (by its ``lock_name``; a projection's name: its partition 0, the one builds and
    retries are done under), in the store of the connection's schema."""
    return sql.SQL("{}, hashtext(current_schema() || '.' || {})").format(sql.Literal(LOCK_CLASS), sql.Literal(name))


@dataclass(frozen=True)
class Progress:
    """A unit's row: its status, and the last event it applied (transaction id as text, position)."""

    unit: Unit
    status: str
    after: tuple[str, int]
    retry: bool  # dead letters of its projection are waiting to be retried (by this unit)
    epoch: int  # moved by every new build: a page of an older epoch is not written

    @property
    def order(self) -> tuple[int, int]:
        return int(self.after[0]), self.after[1]


def read(conn: psycopg.Connection[Any], units: Sequence[Unit]) -> list[Progress]:
    """The progress of ``units``, by unit (a unit whose row is gone is left out)."""
    by_key = {(u.name, u.partition): u for u in units}
    rows = conn.execute(
        """select p.name, p.partition, p.status, p.last_tx::text, p.last_position,
                  exists (select from pge_dead_letters l
                          where l.projection = p.name and l.retry and p.partition = any(l.partitions)
                            and not p.partition = any(l.retried)),
                  p.epoch
           from pge_projection_progress p where p.name = any(%s)""",
        (sorted({u.name for u in units}),),
    ).fetchall()
    found = [Progress(by_key[(r[0], r[1])], r[2], (r[3], r[4]), r[5], r[6]) for r in rows if (r[0], r[1]) in by_key]
    return sorted(found, key=lambda p: p.unit)


MOVED = "JPP01"  # the SQLSTATE of pge_move_progress (a page's commit) when a unit was not where the page started


def stop(conn: psycopg.Connection[Any], name: str, error: errors.JsprojError, *, epoch: int | None = None) -> None:
    """Stop projection ``name`` (every partition) where it is, keeping the error (``jsproj status`` shows it);
    with ``epoch``, only if it is still in that epoch (a build of an older deployment stops nothing newer)."""
    conn.execute("select pge_stop_projections(%s)", (Jsonb({name: stopping(error, epoch)}),))


def stopping(error: errors.JsprojError, epoch: int | None = None) -> dict[str, Any]:
    """A stop as ``pge_stop_projections`` takes it."""
    return {"error": error.to_dict(), "epoch": epoch}


def restart_build(conn: psycopg.Connection[Any], name: str) -> None:
    """Build ``name`` again from scratch (the daemon holding it does)."""
    conn.execute(
        """update pge_projection_progress set status = 'build', error = null, last_tx = '0', last_position = 0,
           events = 0, updated_at = now(),
           epoch = (select max(q.epoch) + 1 from pge_projection_progress q where q.name = %s)
           where name = %s""",
        (name, name),
    )


def building(conn: psycopg.Connection[Any], names: Sequence[str]) -> list[str]:
    """Which of ``names`` are to be built."""
    query = "select distinct name from pge_projection_progress where status = 'build' and name = any(%s) order by name"
    return [name for (name,) in conn.execute(query, (list(names),)).fetchall()]


def count_built(conn: psycopg.Connection[Any], names: Sequence[str], events: int) -> None:
    """Show how far a build has read (``jsproj status``, ``jsproj rebuild``)."""
    conn.execute(
        "update pge_projection_progress set events = %s, updated_at = now() where name = any(%s)",
        (events, list(names)),
    )


def epochs(conn: psycopg.Connection[Any], names: Sequence[str]) -> dict[str, int]:
    """The epoch of each of ``names`` (every partition has its projection's)."""
    query = "select name, max(epoch) from pge_projection_progress where name = any(%s) group by name"
    return {name: int(epoch) for name, epoch in conn.execute(query, (list(names),)).fetchall()}


def swapped_in(conn: psycopg.Connection[Any], name: str, epoch: int, after: tuple[str, int], events: int) -> bool:
    """Swap in a build of ``name`` begun in ``epoch``: every partition runs on from the last event folded.
    False, and nothing changed, when the projection is to be built again meanwhile (a new epoch) or stopped."""
    locked = conn.execute(
        "select status, epoch from pge_projection_progress where name = %s for update", (name,)
    ).fetchall()
    if not locked or any(row != ("build", epoch) for row in locked):
        return False
    conn.execute(
        """update pge_projection_progress
           set status = 'running', error = null, last_tx = %s::xid8, last_position = %s, events = %s, updated_at = now()
           where name = %s""",
        (after[0], after[1], events, name),
    )
    return True


def resume(conn: psycopg.Connection[Any], name: str) -> bool:
    """Restart a stopped async projection where it stopped; False if it was not stopped.

    One that stopped during a build has no progress yet (and perhaps the
    documents of an older definition): it builds again.
    """
    return (
        conn.execute(
            """with q as (select bool_and(last_tx = '0' and last_position = 0) as unbuilt, max(epoch) as epoch
                         from pge_projection_progress where name = %s)
               update pge_projection_progress p
               set status = case when q.unbuilt then 'build' else 'running' end,
                   epoch = case when q.unbuilt then q.epoch + 1 else p.epoch end,
                   error = null, updated_at = now()
               from q where p.name = %s and p.status = 'stopped'""",
            (name, name),
        ).rowcount
        > 0
    )


def state(conn: psycopg.Connection[Any], name: str) -> tuple[str, int, dict[str, Any] | None] | None:
    """A projection's status, events applied and error, over its partitions (a stopped one first); None: no row."""
    row = conn.execute(
        """select status, events, error from pge_projection_progress where name = %s
           order by case status when 'stopped' then 0 when 'build' then 1 else 2 end, last_tx, last_position limit 1""",
        (name,),
    ).fetchone()
    return (row[0], int(row[1]), row[2]) if row else None


#: The projections (name, status) with a partition that has not processed every event up to a target.
CAUGHT_UP_BLOCKERS = """select distinct name, status from pge_projection_progress
   where name = any(%s)
     and (status <> 'running'
          or (%s::xid8 is not null and (last_tx, last_position) < (%s::xid8, %s::bigint)))
   order by name"""


def blockers_params(names: list[str], target: tuple[str, int] | None) -> tuple[Any, ...]:
    """The parameters of CAUGHT_UP_BLOCKERS for ``names`` and the (tx, position) ``target`` (None: any)."""
    return (names, target[0] if target else None, target[0] if target else None, target[1] if target else 0)


def caught_up_blockers(
    conn: psycopg.Connection[Any], names: list[str], target: tuple[str, int] | None
) -> list[tuple[str, str]]:
    """The projections (name, status) with a partition that has not processed every event up to ``target``."""
    return conn.execute(CAUGHT_UP_BLOCKERS, blockers_params(names, target)).fetchall()
