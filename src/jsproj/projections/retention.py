"""Retention per stream type: rules kept in ``pge_retention``, applied by the daemon or ``jsproj retention apply``.

A rule archives or erases (docs/lifecycle.md#retention says which to choose):

- ``archive``, by ``max_age``: the streams of the type whose last event was appended longer ago are archived
  (archiving is of whole streams: their events stay, reads and rebuilds leave them out, views are kept);
- ``erase``, by ``max_age``, ``max_count`` and/or ``truncate_before``: the events of the type's streams appended
  longer ago, more than ``max_count`` behind their stream's last, or before version ``truncate_before``, are
  erased as :func:`~jsproj.projections.erasure.erase` does (the views they reached rebuilt).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jsproj import errors
from jsproj.engine.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from jsproj.projections.erasure import Chosen, erase_chosen
from jsproj.projections.operations import session
from jsproj.store.sync import EventStore

ACTIONS = ("archive", "erase")

# The streams of a type whose last event was appended before now - max_age, not archived yet.
_COLD_STREAMS = """
select s.id from pge_streams s
where s.type = %s and s.archived_at is null
  and (select max(e.appended_at) from pge_events e where e.stream_id = s.id) < now() - %s
order by s.id
"""


_ARCHIVE_IDLE = "select (pge_archive_stream(%s, now() - %s) ->> 'changed')::boolean"


@dataclass(frozen=True)
class Rule:
    """One stream type's retention: what to do and when (each limit None when not set)."""

    stream_type: str
    action: str
    max_age: timedelta | None = None
    max_count: int | None = None
    truncate_before: int | None = None

    def to_dict(self) -> dict[str, Any]:
        age = None if self.max_age is None else self.max_age.total_seconds()
        return {"streamType": self.stream_type, "action": self.action, "maxAgeSeconds": age,
                "maxCount": self.max_count, "truncateBefore": self.truncate_before}  # fmt: skip


@dataclass(frozen=True)
class Applied:
    """What applying one rule did: the streams archived or the events erased (and the erasure's id)."""

    stream_type: str
    action: str
    streams: int = 0
    events: int = 0
    erasure: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"streamType": self.stream_type, "action": self.action, "streams": self.streams,
                "events": self.events, "erasure": self.erasure}  # fmt: skip


def checked(rule: Rule) -> Rule:
    """``rule``, or the :class:`~jsproj.errors.InputError` saying what is wrong with it."""
    if rule.action not in ACTIONS:
        raise errors.InputError(f"a retention rule archives or erases, not {rule.action!r}")
    if not isinstance(rule.stream_type, str) or not 0 < len(rule.stream_type) <= 255:
        raise errors.InputError(f"the stream type must be 1 to 255 characters, not {rule.stream_type!r}")
    if rule.max_age is None and rule.max_count is None and rule.truncate_before is None:
        raise errors.InputError("a retention rule needs max_age, max_count or truncate_before")
    if rule.action == "archive" and (rule.max_count is not None or rule.truncate_before is not None):
        raise errors.InputError("archiving is of whole streams: an archive rule takes max_age only "
                                "(max_count and truncate_before erase events)")  # fmt: skip
    if rule.max_age is not None and rule.max_age <= timedelta(0):
        raise errors.InputError(f"max_age must be longer than nothing, not {rule.max_age}")
    if rule.max_count is not None and rule.max_count < 1:
        raise errors.InputError(f"max_count must be 1 or more, not {rule.max_count}")
    if rule.truncate_before is not None and rule.truncate_before < 2:
        raise errors.InputError(f"truncate_before must be a version of 2 or more, not {rule.truncate_before}")
    return rule


def set_rule(store: EventStore, rule: Rule) -> Rule:
    """Keep ``rule`` for its stream type (replacing the one it had)."""
    checked(rule)
    with session(store) as conn:
        conn.execute(
            """insert into pge_retention (stream_type, action, max_age, max_count, truncate_before)
               values (%s, %s, %s, %s, %s)
               on conflict (stream_type) do update set action = excluded.action, max_age = excluded.max_age,
                 max_count = excluded.max_count, truncate_before = excluded.truncate_before, updated_at = now()""",
            (rule.stream_type, rule.action, rule.max_age, rule.max_count, rule.truncate_before),
        )
    return rule


def clear_rule(store: EventStore, stream_type: str) -> bool:
    """Drop the stream type's rule; whether it had one."""
    with session(store) as conn:
        return conn.execute("delete from pge_retention where stream_type = %s", (stream_type,)).rowcount > 0


def rules(store: EventStore) -> list[Rule]:
    """Every rule, by stream type."""
    with session(store) as conn:
        rows = conn.execute(
            "select stream_type, action, max_age, max_count, truncate_before from pge_retention order by stream_type"
        ).fetchall()
    return [Rule(*row) for row in rows]


def apply_rules(
    store: EventStore,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    wait: bool = True,
) -> list[Applied]:
    """Apply every rule now; what each did. ``wait``: see :func:`~jsproj.projections.erasure.erase`."""
    limits: dict[str, Any] = {"timeout": timeout, "memory_limit": memory_limit}
    return [_apply(store, rule, limits, wait) for rule in rules(store)]


def _apply(store: EventStore, rule: Rule, limits: dict[str, Any], wait: bool) -> Applied:
    if rule.action == "archive":
        with session(store) as conn:
            cold = [stream for (stream,) in conn.execute(_COLD_STREAMS, (rule.stream_type, rule.max_age))]
            # (idle yet? asked again under each stream's lock: an append may have come since the list was read)
            archived = [conn.execute(_ARCHIVE_IDLE, (stream, rule.max_age)).fetchone() for stream in cold]
        return Applied(rule.stream_type, rule.action, streams=sum(1 for row in archived if row and row[0]))
    limits_sql, params = _limits(rule)
    chosen = Chosen(["e.stream_type = %(rule_type)s", f"({' or '.join(limits_sql)})"],
                    {"rule_type": rule.stream_type, **params})  # fmt: skip
    reason = f"retention of {rule.stream_type} streams ({_worded(rule)})"
    done = erase_chosen(store, chosen, reason, limits, dry_run=False, wait=wait)
    return Applied(rule.stream_type, rule.action, events=done.events, erasure=done.erasure)


def _limits(rule: Rule) -> tuple[list[str], dict[str, Any]]:
    """The conditions an event past one of the rule's limits meets (any of them), with their parameters."""
    found: list[str] = []
    params: dict[str, Any] = {}
    if rule.max_age is not None:
        found.append("e.appended_at < now() - %(max_age)s")
        params["max_age"] = rule.max_age
    if rule.max_count is not None:
        found.append("e.version <= (select max(m.version) from pge_events m where m.stream_id = e.stream_id)"
                     " - %(max_count)s")  # fmt: skip
        params["max_count"] = rule.max_count
    if rule.truncate_before is not None:
        found.append("e.version < %(truncate_before)s")
        params["truncate_before"] = rule.truncate_before
    return found, params


def _worded(rule: Rule) -> str:
    parts = []
    if rule.max_age is not None:
        parts.append(f"older than {age_text(rule.max_age)}")
    if rule.max_count is not None:
        parts.append(f"more than {rule.max_count} behind the last")
    if rule.truncate_before is not None:
        parts.append(f"before version {rule.truncate_before}")
    return ", ".join(parts)


def age_text(age: timedelta) -> str:
    """An age as the CLI takes it: a whole number of the largest unit that divides it (30d, 12h, 90s)."""
    seconds = int(age.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
