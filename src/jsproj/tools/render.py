"""Human-readable output for the CLI and the REPL: views, status and dead letters as rich tables, projection logs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from jsproj.follow.daemon.poison import DeadLetter, DeadLetterGroup
    from jsproj.follow.fleet.status import StoreStatus
    from jsproj.projections.status import ProjectionStatus
    from jsproj.store.replicas import ReplicaLag

MAX_COLUMNS = 8


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 document``, ``2 documents``, ``1 dead letter``: a count and its noun, singular for one."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def documents_table(title: str, documents: Mapping[str, Any]) -> Table:
    """A table of one projection's documents: a column per field when they are small objects."""
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("id", style="bold")
    fields: list[str] = []
    if all(isinstance(doc, dict) for doc in documents.values()):
        for doc in documents.values():
            fields.extend(key for key in doc if key not in fields)
    if fields and len(fields) <= MAX_COLUMNS:
        for key in fields:
            table.add_column(key)
        for doc_id, doc in documents.items():
            table.add_row(doc_id, *(_cell(doc[key]) if key in doc else "" for key in fields))
    else:
        table.add_column("document")
        for doc_id, doc in documents.items():
            table.add_row(doc_id, _cell(doc))
    return table


def print_views(views: Mapping[str, Any], console: Console | None = None) -> None:
    """Print ``{"views": ..., "aggregates": ...}`` as one table per projection."""
    console = console or Console()
    for name, documents in views["views"].items():
        console.print(documents_table(f"{name} ({counted(len(documents), 'document')})", documents))
        console.print()
    if views["aggregates"]:
        table = Table(title="aggregates", title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("document")
        for name, doc in views["aggregates"].items():
            table.add_row(name, "(no events yet)" if doc is None else _cell(doc))
        console.print(table)


def print_logs(logs: Iterable[Mapping[str, Any]]) -> None:
    """Print what projection code wrote with ``console.*``, on stderr."""
    console = Console(stderr=True, highlight=False)
    for entry in logs:
        where = entry.get("projection") or entry.get("file") or "projections"
        console.print(f"[dim]\\[{where}][/dim] {entry.get('message', '')}", markup=True)


def status_table(found: Sequence[ProjectionStatus]) -> Table:
    """The ``jsproj status`` table of :func:`jsproj.projections.status.projection_status` rows."""
    table = Table(title="projections", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in ("lifecycle", "engine", "status", "position", "lag", "dead", "daemon"):
        table.add_column(column)
    for s in found:
        lag = _lag(s.lag_events, s.lag_seconds)
        row_status = s.state + (f": {s.error.get('message', '')[:60]}" if s.error else "")
        if s.pending:
            row_status += f"; {_pending(s.pending)}"
        # The position alone: positions have gaps (a rolled-back append uses some), the lag counts events.
        position = "" if s.position is None else str(s.position)
        table.add_row(s.name, s.lifecycle, s.engine, row_status, position, lag, str(s.dead_letters), s.holder or "")
    return table


def stores_table(found: Sequence[StoreStatus]) -> Table:
    """The ``jsproj status --all-stores`` table: a line per store."""
    table = Table(title="stores", title_justify="left")
    table.add_column("store", no_wrap=True)
    for column in ("projections", "behind", "stopped", "dead", "daemons"):
        table.add_column(column)
    for each in found:
        if each.error is not None:
            table.add_row(each.key.label, f"cannot be read: {each.error[:80]}", "", "", "", "")
            continue
        behind = _lag(each.behind, each.oldest)
        daemons = ", ".join(d.removeprefix("jsproj daemon ") for d in each.daemons)
        if each.left is not None:
            daemons = (daemons + "; " if daemons else "") + "no fleet of this role: another owns it"
        table.add_row(each.key.label, str(len(each.rows)), behind, ", ".join(each.stopped),
                      str(sum(row.dead_letters for row in each.rows)), daemons)  # fmt: skip
    return table


def replicas_table(lags: Sequence[ReplicaLag]) -> Table:
    """The replicas' table of ``jsproj status`` and ``jsproj replicas``: each one's replay and lag."""
    table = Table(title="replicas", title_justify="left")
    for column in ("replica", "state", "replayed", "lag"):
        table.add_column(column, no_wrap=column == "replica")
    for lag in lags:
        if lag.error is not None:
            table.add_row(lag.replica, f"unreachable: {lag.error[:60]}", "", "")
            continue
        behind = "" if lag.lag_bytes is None else f"{lag.lag_bytes:,} bytes"
        if lag.lag_seconds is not None:
            behind += f" (last replayed commit {lag.lag_seconds:.1f} s ago)"
        table.add_row(lag.replica, "standby" if lag.standby else "not in recovery", lag.replay_lsn or "", behind)
    return table


def _lag(events: int | None, seconds: float | None) -> str:
    """The lag cell: nothing (not async), 0, or the events behind and the oldest one's age."""
    if events is None:
        return ""
    return "0" if not events else f"{_events(events)} ({seconds or 0:.0f} s)"


def _pending(pending: Mapping[str, Any]) -> str:
    """A new version built beside a projection, as ``jsproj status`` shows it."""
    shown = f"v{pending['version']} {pending['status']}"
    if pending["status"] == "pending":
        return f"{shown}: built beside it, {_events(pending['events'])} read"
    if pending["status"] == "built":
        return f"{shown}: jsproj promote switches to it"
    return f"{shown}: {(pending.get('error') or {}).get('message', '')[:60]}"


def _events(count: int) -> str:
    return f"{count} event" + ("" if count == 1 else "s")


def dead_letters_table(letters: Sequence[DeadLetter], title: str | None = None) -> Table:
    """The ``jsproj dead-letters --list`` table: the error's kind, and its message's first line whole (wrapped,
    never cut before the cause)."""
    table = Table(title=title or f"dead letters ({len(letters)})", title_justify="left")
    for column in ("id", "projection", "position", "stream", "event", "error"):
        table.add_column(column, overflow="fold" if column == "error" else "ellipsis")
    for d in letters:
        message = str(d.error.get("message", "")).split("\n", 1)[0]
        table.add_row(str(d.id), d.projection, str(d.position), d.stream_id, d.event_type,
                      f"{d.error.get('kind', 'Error')}: {message}")  # fmt: skip
    return table


def dead_letter_groups_table(groups: Sequence[DeadLetterGroup]) -> Table:
    """The ``jsproj dead-letters`` table: a row per projection and error, with how many and where."""
    total = sum(group.count for group in groups)
    table = Table(title=f"dead letters ({total}) by projection and error", title_justify="left")
    for column in ("projection", "count", "positions", "error"):
        table.add_column(column, overflow="fold" if column == "error" else "ellipsis")
    for g in groups:
        where = str(g.first_position) if g.count == 1 else f"{g.first_position}-{g.last_position}"
        table.add_row(g.projection, str(g.count), where, f"{g.kind}: {g.message}")
    return table
