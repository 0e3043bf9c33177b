"""Simulation: run projections over an event log in memory, as a storing host would.

The log is checked and numbered by the engine, then applied page by page
through the same route/apply calls the database hosts use, with the
documents kept in Python dictionaries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict

from jsproj.engine.projections import Change, Projections

DEFAULT_PAGE_SIZE = 5000


class Views(TypedDict):
    """Every projection's documents: ``views[name][id]`` and ``aggregates[name]`` (None when never touched)."""

    views: dict[str, dict[str, Any]]
    aggregates: dict[str, Any]


def now_iso() -> str:
    """The current time as the engine writes timestamps (ISO 8601, milliseconds, UTC)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _events_text(events: str | os.PathLike[str] | Sequence[Any]) -> str:
    if isinstance(events, os.PathLike):
        from jsproj.engine.events_file import read

        return read(events)
    if isinstance(events, str):
        return events
    return json.dumps(list(events))


def simulate(
    projections: Projections | str | os.PathLike[str],
    events: str | os.PathLike[str] | Sequence[Any],
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    now: str | None = None,
) -> Views:
    """Run every projection over an event log and return all views.

    ``projections`` is a loaded :class:`Projections` or a folder of ``*.js``
    files; ``events`` is the JSON text of an events file, a :class:`~pathlib.Path`
    to one, or a list of append messages. Raises the first handler error.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    if isinstance(projections, Projections):
        return _simulate(projections, _events_text(events), page_size, now)
    with Projections.from_folder(projections) as loaded:
        return _simulate(loaded, _events_text(events), page_size, now)


def apply_page(projections: Projections, page: str, store: dict[str, dict[str, Any]]) -> dict[str, Change]:
    """Apply one page of records (JSON text) to documents kept in memory (``store[name][id]``),
    as a storing host does: route, hand over the routed documents, apply, keep the changes.

    Raises the first handler error, before anything in ``store`` changes.
    """
    routed = projections.route(page)
    documents = {name: {key: store[name].get(key) for key in keys} for name, keys in routed.items()}
    result = projections.apply(page, documents)
    if result.errors:
        raise result.errors[0]
    for name, change in result.changes.items():
        store[name].update(change.upserts)
        for key in change.deletes:
            store[name].pop(key, None)
    return result.changes


def _simulate(projections: Projections, text: str, page_size: int, now: str | None) -> Views:
    records = projections.normalize(text, now=now or now_iso())
    store: dict[str, dict[str, Any]] = {name: {} for name in projections.names}
    for start in range(0, len(records), page_size):
        apply_page(projections, json.dumps(records[start : start + page_size]), store)
    views: Views = {"views": {}, "aggregates": {}}
    for info in projections.infos:
        if info.kind == "aggregate":
            views["aggregates"][info.name] = store[info.name].get(info.name)
        else:
            views["views"][info.name] = store[info.name]
    return views
