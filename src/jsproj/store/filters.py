"""What a read of the log by what happened may ask for, checked: :class:`LogFilter`, and the SQL it becomes.

``read_all`` (both stores), ``jsproj events`` and the Node client's
``readAll`` take the same filters: event types, stream types (categories),
an append-time window ``[since, until)`` on ``pge_events.appended_at``, and
metadata containment (``@>``). They are checked here, before any SQL runs,
each failure a :class:`~jsproj.errors.LogFilterError` naming the option;
values only ever reach SQL as parameters. docs/reading.md says what each
costs and which index serves it (sql/migrations/0014_log_reads.sql).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsproj.errors import LogFilterError
from jsproj.store.recorded import not_archived

#: The most event types (or stream types) one read may name: a page reads at most this many times ``limit``
#: index entries (one range scan per type, merged).
MAX_TYPES = 32
#: The longest type name the store holds (pge_events.type, pge_streams.type).
MAX_NAME = 255

Time = datetime | str


@dataclass(frozen=True)
class LogFilter:
    """A checked filter: each part None when not asked for. Build it with :func:`log_filter`."""

    types: tuple[str, ...] | None = None
    stream_types: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    metadata: str | None = None  # JSON text of an object
    include_archived: bool = False  # the events of archived streams too (docs/lifecycle.md)

    @property
    def key(self) -> tuple[str, tuple[str, ...]] | None:
        """The indexed column a page is read by, one range scan per name: event types first, else stream types."""
        if self.types is not None:
            return "type", self.types
        if self.stream_types is not None:
            return "stream_type", self.stream_types
        return None

    def conditions(self, alias: str) -> list[str]:
        """The conditions on rows ``alias`` of pge_events but the key's (:attr:`key`), with named parameters."""
        key = self.key[0] if self.key else None
        found = []
        if self.types is not None and key != "type":
            found.append(f"{alias}.type = any(%(types)s::text[])")
        if self.stream_types is not None and key != "stream_type":
            found.append(f"{alias}.stream_type = any(%(stream_types)s::text[])")
        if self.since is not None:
            found.append(f"{alias}.appended_at >= %(since)s")
        if self.until is not None:
            found.append(f"{alias}.appended_at < %(until)s")
        if self.metadata is not None:
            found.append(f"{alias}.metadata @> %(metadata)s::jsonb")
        if not self.include_archived:
            found.append(not_archived(alias))
        return found

    def params(self) -> dict[str, Any]:
        return {
            "types": list(self.types or ()),
            "stream_types": list(self.stream_types or ()),
            "keys": list(self.key[1]) if self.key else [],
            "since": self.since,
            "until": self.until,
            "metadata": self.metadata,
        }


def log_filter(
    types: str | Iterable[str] | None = None,
    stream_types: str | Iterable[str] | None = None,
    since: Time | None = None,
    until: Time | None = None,
    metadata: Mapping[str, Any] | None = None,
    include_archived: bool = False,
) -> LogFilter:
    """The filter these options ask for, checked (a :class:`~jsproj.errors.LogFilterError` names the bad one)."""
    start, end = _time(since, "since"), _time(until, "until")
    if start is not None and end is not None and start >= end:
        raise LogFilterError(
            f"since ({start.isoformat()}) must be before until ({end.isoformat()}): the window is [since, until)",
            option="since",
        )
    names = _names(types, "types"), _names(stream_types, "stream_types")
    return LogFilter(*names, start, end, _metadata(metadata), include_archived=bool(include_archived))


def check_page(after: object, limit: object) -> None:
    """``after`` is a position (0 or more) and ``limit`` a number of events (1 or more)."""
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise LogFilterError(f"after is a position read_all returned (or 0), not {after!r}", option="after")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise LogFilterError(f"limit is a number of events (1 or more), not {limit!r}", option="limit")


def _names(given: str | Iterable[str] | None, option: str) -> tuple[str, ...] | None:
    if given is None:
        return None
    names = (given,) if isinstance(given, str) else tuple(given) if isinstance(given, Iterable) else None
    if not names or not all(isinstance(n, str) and 0 < len(n) <= MAX_NAME for n in names):
        raise LogFilterError(
            f"{option} is a name or a non-empty list of names (1-{MAX_NAME} characters each), not {given!r}",
            option=option,
        )
    unique = tuple(dict.fromkeys(names))
    if len(unique) > MAX_TYPES:
        raise LogFilterError(
            f"{option} names {len(unique)} types; a read takes at most {MAX_TYPES} (read the others apart)",
            option=option,
        )
    return unique


def _time(given: Time | None, option: str) -> datetime | None:
    if given is None:
        return None
    moment = given
    if isinstance(given, str):
        try:
            moment = datetime.fromisoformat(given)
        except ValueError:
            raise LogFilterError(
                f"{option} must be an ISO 8601 date-time with a zone (2026-01-05T08:00:00Z), not {given!r}",
                option=option,
            ) from None
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise LogFilterError(
            f"{option} must be a date-time with a zone (Z or +hh:mm; a naive time is ambiguous), not {given!r}",
            option=option,
        )
    return moment


def _metadata(given: Mapping[str, Any] | None) -> str | None:
    if given is None:
        return None
    if not isinstance(given, Mapping):
        raise LogFilterError(
            f"metadata is a JSON object the events' metadata must contain, not {given!r}", option="metadata"
        )
    try:
        return json.dumps(given, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise LogFilterError(f"metadata is not JSON: {exc}", option="metadata") from None
