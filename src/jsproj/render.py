"""Human-readable output for the CLI: views as rich tables, projection logs on stderr."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

MAX_COLUMNS = 8


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
        console.print(documents_table(f"{name} ({len(documents)} documents)", documents))
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
