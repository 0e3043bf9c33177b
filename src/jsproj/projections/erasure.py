"""Erasing events for an erasure request: the events' data gone, every view they reached rebuilt without it.

:func:`erase` picks the events (a stream, and/or the filters of a read of the log: docs/reading.md), finds the
projections they reached by routing them with the deployed projections (the engine's own routing, so views
keyed by ``identifiedBy`` and upcast types count as they did), and in one transaction, appends waiting:
erases them (``pge_erase_events``: data and metadata replaced by a marker, errors about them too, the erasure
recorded), rebuilds the inline projections they reached and sets the async ones to be built again; these are
then built beside their views and swapped in (here, or by the daemon holding them), so that their readers never
see a view half-built. docs/lifecycle.md says what remains and what does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.engine.projections import ProjectionInfo, Projections, Upcasting
from jsproj.engine.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from jsproj.follow.daemon import progress
from jsproj.projections.operations import finish_build, session
from jsproj.store.filters import LogFilter, Time, log_filter
from jsproj.store.python_engine import deployed_sources
from jsproj.store.python_engine import rebuild as rebuild_documents
from jsproj.store.sync import EventStore

#: The chosen events as engine records, and their positions: archived streams' too (an erasure reaches them).
_CHOSEN = """
select coalesce(array_agg(e.position order by e.position), '{{}}'),
       '[' || coalesce(string_agg(pge_event_record(e.position, e.stream_id, s.type, e.version, e.timestamp, e.metadata,
                                                   e.type, e.id, e.data), ',' order by e.position), '') || ']'
from pge_events e join pge_streams s on s.id = e.stream_id
where {conditions}
"""


#: The longest an erasure waits for a lock (seconds): on the log (appends in flight) or a view it rebuilds.
LOCK_TIMEOUT = 5.0


@dataclass(frozen=True)
class Erased:
    """What an erasure did: its id (None: no event matched), the events erased, the inline projections rebuilt in
    its transaction and the async ones rebuilt and swapped in after it."""

    erasure: int | None
    events: int
    rebuilt: list[str]
    swapped: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"erasure": self.erasure, "events": self.events, "rebuilt": self.rebuilt, "swapped": self.swapped}


def erase(
    store: EventStore,
    stream_id: str | None = None,
    *,
    reason: str,
    types: str | Iterable[str] | None = None,
    stream_types: str | Iterable[str] | None = None,
    since: Time | None = None,
    until: Time | None = None,
    metadata: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    dry_run: bool = False,
    wait: bool = True,
) -> Erased:
    """Erase the events of ``stream_id`` and/or those the filters choose (all must hold; at least one given),
    with ``reason`` recorded (an erasure request's reference: never the erased data). See the module's doc.

    With ``dry_run``, nothing changes: the result says how many events would be erased and which projections
    rebuilt (its ``erasure`` is None). Without ``wait``, the async projections are left to build and swap in
    when a daemon gets to them (the daemon's retention does so: it holds them)."""
    if metadata is not None and not metadata:  # (every event with metadata contains {}: not a choice)
        raise errors.InputError("an erasure's metadata filter names what the events' metadata holds, not {}")
    where = log_filter(types, stream_types, since, until, metadata, include_archived=True)
    if stream_id is None and where == LogFilter(include_archived=True):
        raise errors.InputError("an erasure needs a stream or a filter: it never erases the whole log by default")
    if not isinstance(reason, str) or not 0 < len(reason.strip()) <= 1000:
        raise errors.InputError("an erasure needs a reason of 1 to 1000 characters (an erasure request's reference)")
    limits: dict[str, Any] = {"timeout": timeout, "memory_limit": memory_limit}
    return erase_chosen(store, Chosen(*_conditions(stream_id, where)), reason, limits, dry_run=dry_run, wait=wait)


@dataclass(frozen=True)
class Chosen:
    """Which events to erase: conditions on rows ``e`` of pge_events (``and``-ed), with their named parameters."""

    conditions: list[str]
    params: dict[str, Any]


def erase_chosen(
    store: EventStore, chosen: Chosen, reason: str, limits: dict[str, Any], *, dry_run: bool, wait: bool
) -> Erased:
    """Erase the events ``chosen`` picks but those erased already (see :func:`erase`)."""
    _refuse_detached(store)
    try:
        done = _erase_committed(store, chosen, reason, limits, dry_run)
    except psycopg.errors.LockNotAvailable as exc:
        raise errors.StoreError(
            f"the erasure could not take a lock within {LOCK_TIMEOUT:g} s ({exc.diag.message_primary}): a"
            " transaction holds the log or a view it rebuilds (an idle one?); nothing was erased, try again"
        ) from None
    if wait and done.erasure is not None:
        for name in done.swapped:
            finish_build(store, name, limits)
    return done


# The log's partitions detached from it (docs/partitioning.md): tables pge_events_<n> of the store's schema that
# are no partition of pge_events now.
_DETACHED = """
select c.relname from pg_class c
where c.relnamespace = current_schema()::regnamespace and c.relkind = 'r' and c.relname ~ '^pge_events_[0-9]+$'
  and not exists (select from pg_inherits i where i.inhrelid = c.oid)
order by c.relname
"""


def _refuse_detached(store: EventStore) -> None:
    """An erasure cannot reach a detached partition's events, and must not say it erased what it left there."""
    with store.connection() as conn:
        detached = [row[0] for row in conn.execute(_DETACHED)]
    if detached:
        raise errors.PartitioningError(
            f"the log has detached partitions ({', '.join(detached)}): an erasure cannot reach their events, so "
            "none is done while they exist; attach them again, or erase in them yourself and then drop them "
            "(docs/partitioning.md#detaching-old-partitions)"
        )


def _erase_committed(store: EventStore, chosen: Chosen, reason: str, limits: dict[str, Any], dry_run: bool) -> Erased:
    """The erasure's transaction: the events chosen, the projections they reached, the erasure and the inline
    rebuilds; the async projections reached left to be built again."""
    with session(store, autocommit=False) as conn, conn.transaction():
        # Appends wait meanwhile (the inline rebuilds read the whole log); a lock that does not come within
        # LOCK_TIMEOUT ends the erasure instead, so that a transaction left open never holds every append.
        conn.execute(f"set local lock_timeout = '{int(LOCK_TIMEOUT * 1000)}ms'")
        conn.execute("lock table pge_events in share mode")
        positions, records = _chosen(conn, chosen)
        if not positions:
            return Erased(None, 0, [], [])
        with Projections(deployed_sources(conn), **limits) as loaded:
            touched = _reached(loaded, records)
            inline = _inline(conn, sorted(touched))
            swapped = [name for name in sorted(touched) if name not in inline]
            if dry_run:
                return Erased(None, len(positions), inline, swapped)  # (nothing was written)
            query = "select pge_erase_events(%s, %s, %s)"
            erasure = conn.execute(query, (positions, reason, Jsonb(touched))).fetchone()
            assert erasure is not None
        with Projections(deployed_sources(conn), **limits) as fresh:  # (nothing of the routing's calls in it)
            _rebuild_inline(conn, fresh, inline)
        for name in swapped:  # to be built again, beside: with the erasure, or not at all
            progress.restart_build(conn, name)
    return Erased(int(erasure[0]), len(positions), inline, swapped)


def _conditions(stream_id: str | None, where: LogFilter) -> tuple[list[str], dict[str, Any]]:
    """The conditions of a stream and a read's filter."""
    conditions = where.conditions("e")
    params: dict[str, Any] = where.params()
    if where.key is not None:  # (the read's key is a condition here: the erasure reads no page by it)
        conditions.append(f"e.{where.key[0]} = any(%(keys)s::text[])")
    if stream_id is not None:
        conditions.append("e.stream_id = %(stream)s")
        params["stream"] = stream_id
    return conditions, params


def _chosen(conn: psycopg.Connection[Any], chosen: Chosen) -> tuple[list[int], str]:
    """The positions of the events chosen (not erased already) and their engine records."""
    conditions = [*chosen.conditions, """e.data <> '{"$erased": true}'::jsonb"""]
    query = _CHOSEN.format(conditions=" and ".join(conditions))
    row = conn.execute(query, chosen.params).fetchone()  # constant SQL fragments; values as parameters
    assert row is not None
    return list(row[0]), str(row[1])


def _reached(loaded: Projections, records: str) -> dict[str, list[str] | None]:
    """The stored projections the events reached, each with the documents they touched (None: not known, all).

    Reached is decided by what each projection subscribes to, never by what its code answers (a key function may
    route by what it saw before; docs/lifecycle.md#what-an-erasure-rebuilds): a stream projection of a stream
    type of the events, and any projection handling one of the types the events have, under their old names or
    upcast, or every type. The projections of a reached one's file are reached too, as a file's projections can
    share what its code keeps; and when an upcaster's code saw an event, every stored projection is, as that code
    may pass what it saw to any event it upcasts later. The documents are those the engine's routing and
    application touch: they are deleted at the erasure (the rebuilds write every document again)."""
    stored = {info.name: info for info in loaded.infos if info.lifecycle != "live"}
    chosen = json.loads(records)
    seen = _types_seen({record["event"]["$type"] for record in chosen}, loaded.upcasting)
    if seen.upcast:
        reached: dict[str, list[str] | None] = {name: [] for name in stored}
    else:
        stream_types = {record["streamType"] for record in chosen}
        reached = {name: [] for name, info in stored.items() if _subscribes(info, seen.types, stream_types)}
    files = {stored[name].file for name in reached}
    reached.update({name: [] for name, info in stored.items() if info.file in files})
    return {**reached, **_touched(loaded, records, [name for name in stored if name in reached])}


@dataclass(frozen=True)
class _Seen:
    """The types projections see events of the stored types as (renamed, upcast), and whether an upcaster's code
    saw one."""

    types: frozenset[str]
    upcast: bool


def _types_seen(stored_types: set[str], upcasting: list[Upcasting]) -> _Seen:
    types = set(stored_types)
    renames = {u.renamed: u.event_type for u in upcasting if u.renamed is not None}
    while more := {renames[t] for t in types if t in renames} - types:
        types |= more
    upcast = any(u.renamed is None and u.event_type in types for u in upcasting)
    return _Seen(frozenset(types), upcast)


def _subscribes(info: ProjectionInfo, types: frozenset[str], stream_types: set[str]) -> bool:
    """Whether ``info`` may have seen an event of one of ``types`` on a stream of one of ``stream_types``."""
    if info.kind == "stream":
        return info.stream_type is None or info.stream_type in stream_types
    return info.any_event or bool(types & {*info.routed_types, "$deleted"})


def _touched(loaded: Projections, records: str, reached: list[str]) -> dict[str, list[str] | None]:
    """The documents of ``reached`` the events touch, by the engine's routing and application (None: not known)."""
    stored = {info.name: info for info in loaded.infos}
    events = [name for name in reached if stored[name].kind == "event"]
    try:
        touched: dict[str, list[str] | None] = {n: k for n, k in loaded.route(records).items() if n in reached}
        applied = loaded.apply(records, {}, only=events) if events else None
    except errors.JsprojError:
        return dict.fromkeys(reached)
    for name, change in (applied.changes if applied is not None else {}).items():
        touched[name] = sorted({*change.upserts, *change.deletes})
    for error in applied.errors if applied is not None else []:  # (a transform failed: its documents unknown)
        touched[str(error.info.get("projection"))] = None
    return touched


def _inline(conn: psycopg.Connection[Any], reached: list[str]) -> list[str]:
    """The inline projections of ``reached``."""
    query = "select name from pge_projection_definitions where lifecycle = 'inline' and name = any(%s)"
    found = {name for (name,) in conn.execute(query, (reached,)).fetchall()}
    return [name for name in reached if name in found]


def _rebuild_inline(conn: psycopg.Connection[Any], loaded: Projections, names: list[str]) -> None:
    """Rebuild inline projections ``names`` in the caller's transaction, each on its engine."""
    query = "select name, engine from pge_projection_definitions where name = any(%s)"
    engines = dict(conn.execute(query, (names,)).fetchall())
    for name in names:
        if engines[name] == "python":
            rebuild_documents(conn, loaded, name)
        else:
            conn.execute("select pge_rebuild(%s)", (name,))
