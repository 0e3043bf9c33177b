"""Where projections and subscriptions stand: ``projection_status``, ``subscription_status`` and
``wait_for_projections``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from jsproj.errors import ProjectionStoppedError, WaitTimeoutError
from jsproj.follow.daemon.progress import CAUGHT_UP_BLOCKERS, LOCK_CLASS, blockers_params
from jsproj.follow.subscriptions import LOCK_CLASS as SUBSCRIPTION_LOCK_CLASS
from jsproj.store.log import HIGH_WATER
from jsproj.store.recorded import NOT_ARCHIVED
from jsproj.store.steps import Call, Query, Steps, ask, run
from jsproj.store.sync import EventStore
from jsproj.store.translate import translate


@dataclass
class ProjectionStatus:
    """One projection's state. Position, lag and holder apply to async projections only."""

    name: str
    kind: str
    lifecycle: str
    engine: str
    status: str  # 'current' (inline), 'live', 'build', 'running' or 'stopped'
    position: int | None
    high_water: int | None
    lag_events: int | None
    lag_seconds: float | None
    dead_letters: int
    holder: str | None  # the daemons holding it (its partitions), comma-separated
    error: dict[str, Any] | None
    partitions: int = 1
    version: int = 1  # the deployed version (.version())
    # a new version built beside it: {version, status ('pending', 'built', 'failed'), events, error}
    pending: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """As JSON (``jsproj status --json``, the dashboard's ``/api/status``): camelCase keys, as every
        command's JSON output has."""
        return {_camel(key): value for key, value in asdict(self).items()}

    @property
    def unheld(self) -> bool:
        """An async projection (or subscription) that is to run but that no daemon (runner) holds now."""
        return self.lifecycle in ("async", "subscriber") and self.status != "stopped" and not self.holder

    @property
    def state(self) -> str:
        """The status as people read it: ``no daemon`` (``build: no daemon``) when nothing holds it, so that
        a projection no daemon runs never reads as running."""
        if not self.unheld:
            return self.status
        waiting = "no runner" if self.lifecycle == "subscriber" else "no daemon"
        return waiting if self.status == "running" else f"{self.status}: {waiting}"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def hints(found: Iterable[ProjectionStatus]) -> list[str]:
    """What to do next, from a status: nothing deployed, no events yet, async projections no daemon runs."""
    found = list(found)
    if not found:
        return ["no projections are deployed here: `jsproj deploy` registers projections/*.js"]
    said = []
    if all(s.high_water is None for s in found):
        said.append("no events yet: `jsproj append FILE` appends an events file")
    unbuilt = [s.name for s in found if s.unheld and s.status == "build" and s.lifecycle == "async"]
    behind = [s.name for s in found if s.unheld and s.status == "running" and s.lifecycle == "async" and s.lag_events]
    if unbuilt:
        said.append(f"no daemon has built {', '.join(unbuilt)} yet: run `jsproj daemon` (their views are empty)")
    if behind:
        said.append(f"{', '.join(behind)} fall behind with no daemon running: run `jsproj daemon`")
    return said


# Lag counts the events after a projection's position but those of archived streams, which no build or page
# reads (docs/lifecycle.md): a log whose last events are archived is caught up.
STATUS_QUERY = f"""
with high as (select max(position) as position from pge_events)
select d.name, d.kind, d.lifecycle, d.engine,
       coalesce(p.status, case d.lifecycle when 'inline' then 'current' else d.lifecycle end),
       p.last_position, (select position from high),
       case when p.status is not null then
           (select count(*) from pge_events e
            where (e.tx_id, e.position) > (p.last_tx, p.last_position) and {NOT_ARCHIVED}) end,
       case when p.status is not null then
           (select extract(epoch from now() - min(e.appended_at)) from pge_events e
            where (e.tx_id, e.position) > (p.last_tx, p.last_position) and {NOT_ARCHIVED}) end,
       (select count(*) from pge_dead_letters l where l.projection = d.name),
       (select string_agg(distinct a.application_name, ', ' order by a.application_name)
        from pg_locks k join pg_stat_activity a on a.pid = k.pid
        where k.locktype = 'advisory' and k.granted and k.classid = {LOCK_CLASS} and k.objsubid = 2
          and k.database = (select oid from pg_database where datname = current_database())
          and k.objid in (select (hashtext(current_schema() || '.'
                                           || case when g = 0 then d.name else d.name || '/' || g end)::bigint
                                  & 4294967295)::oid
                          from generate_series(0, d.partitions - 1) as g)),
       p.error, d.partitions, d.version,
       -- A new version built beside it (docs/deploy.md#versions), if one waits.
       (select jsonb_build_object('version', v.version, 'status', v.status, 'events', v.events, 'error', v.error)
        from pge_projection_versions v where v.name = d.name and v.status <> 'retired')
from pge_projection_definitions d
-- A partitioned projection shows its partition furthest behind: a stopped one, else one building, else
-- the least advanced.
left join lateral (select q.status, q.last_tx, q.last_position, q.error from pge_projection_progress q
                   where q.name = d.name
                   order by case q.status when 'stopped' then 0 when 'build' then 1 else 2 end,
                            q.last_tx, q.last_position
                   limit 1) as p on true
order by d.name
"""


def projection_status(store: EventStore) -> list[ProjectionStatus]:
    """Every deployed projection: lifecycle, engine, position, high-water mark, lag, dead letters, holder."""
    with store.connection() as conn:
        try:
            rows = conn.execute(STATUS_QUERY).fetchall()
        except psycopg.Error as exc:
            raise translate(exc, "status") from exc
    return [
        ProjectionStatus(
            name=r[0],
            kind=r[1],
            lifecycle=r[2],
            engine=r[3],
            status=r[4],
            position=r[5],
            high_water=r[6],
            lag_events=r[7],
            lag_seconds=float(r[8]) if r[8] is not None else (0.0 if r[7] == 0 else None),
            dead_letters=r[9],
            holder=", ".join(h.removeprefix("jsproj daemon ") for h in r[10].split(", ")) if r[10] else None,
            error=r[11],
            partitions=r[12],
            version=r[13],
            pending=r[14],
        )
        for r in rows
    ]


# Python subscriptions (jsproj.follow.subscriptions), as rows of the same shape: the lag counts every event after
# the checkpoint, before filters (what the runner has still to read); the holder is its runner's connection.
SUBSCRIPTIONS_QUERY = f"""
select s.name, s.status, s.last_position, (select max(position) from pge_events),
       (select count(*) from pge_events e
        where (e.tx_id, e.position) > (s.last_tx, s.last_position) and {NOT_ARCHIVED}),
       (select extract(epoch from now() - min(e.appended_at)) from pge_events e
        where (e.tx_id, e.position) > (s.last_tx, s.last_position) and {NOT_ARCHIVED}),
       (select string_agg(a.application_name, ', ') from pg_locks k join pg_stat_activity a on a.pid = k.pid
        where k.locktype = 'advisory' and k.granted and k.classid = {SUBSCRIPTION_LOCK_CLASS} and k.objsubid = 2
          and k.database = (select oid from pg_database where datname = current_database())
          and k.objid = (hashtext(current_schema() || '.' || s.name)::bigint & 4294967295)::oid),
       s.error
from pge_subscriptions s
order by s.name
"""


def subscription_status(store: EventStore) -> list[ProjectionStatus]:
    """Every Python subscription, as a status row: kind ``subscription``, lifecycle ``subscriber``, engine
    ``python``, status ``running``/``retrying``/``stopped``, its checkpoint's position, lag, runner, error."""
    with store.connection() as conn:
        try:
            rows = conn.execute(SUBSCRIPTIONS_QUERY).fetchall()
        except psycopg.Error as exc:
            raise translate(exc, "status") from exc
    return [
        ProjectionStatus(
            name=r[0],
            kind="subscription",
            lifecycle="subscriber",
            engine="python",
            status=r[1],
            position=r[2],
            high_water=r[3],
            lag_events=r[4],
            lag_seconds=float(r[5]) if r[5] is not None else 0.0,
            dead_letters=0,
            holder=r[6].removeprefix("jsproj subscriber ") if r[6] else None,
            error=r[7],
        )
        for r in rows
    ]


def wait_for_projections(
    store: EventStore, timeout: float = 30.0, names: Iterable[str] | None = None, poll: float = 0.02
) -> None:
    """Block until async projections have processed everything appended before the call.

    Raises :class:`WaitTimeoutError` at the deadline, and
    :class:`~jsproj.follow.daemon.ProjectionStoppedError` at once if one stopped.
    A daemon must be running (``jsproj daemon``).
    """
    with store.connection() as conn:
        run(conn, wait_steps(timeout, names, poll))


def wait_steps(timeout: float, names: Iterable[str] | None, poll: float) -> Steps[None]:
    """:func:`wait_for_projections` as steps, for the sync and the asyncio store (the pauses are calls)."""
    deadline = time.monotonic() + timeout
    row = yield from ask(Query(HIGH_WATER), "waiting for projections")
    target = (row[0], row[1]) if row else None
    if names is None:
        query = Query("select name from pge_projection_definitions where lifecycle = 'async'", rows="all")
        names = [name for (name,) in (yield from ask(query, "waiting for projections"))]
    chosen = list(names)
    while True:
        lagging = yield from ask(Query(CAUGHT_UP_BLOCKERS, blockers_params(chosen, target), rows="all"))
        stopped = sorted({name for name, status in lagging if status == "stopped"})
        if stopped:
            raise ProjectionStoppedError(f"{', '.join(stopped)} stopped on an event: it will not catch up")
        if not lagging:
            return
        if time.monotonic() > deadline:
            late = sorted({name for name, _ in lagging})
            raise WaitTimeoutError(
                f"async projections not caught up after {timeout:g} s: {', '.join(late)} (is a daemon running?)",
                lagging=late,
            )
        yield Call(lambda: time.sleep(poll))
