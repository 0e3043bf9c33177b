"""Commands on events: ``append``, ``stream``, ``events`` (the log by what happened) and ``live``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from jsproj import errors
from jsproj.store.recorded import RecordedEvent, iso
from jsproj.tools.cli.common import (
    complete_projection,
    echo_json,
    json_errors,
    json_object,
    json_option,
    log_filter_options,
    open_store,
    read_text,
    sandbox_options,
    store_options,
)

if TYPE_CHECKING:
    from jsproj.projections.upcasting import Upcast
    from jsproj.store.recorded import Stream
    from jsproj.store.sync import EventStore

# -- jsproj append ----------------------------------------------------------


@click.command()
@click.argument("events_file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--expected-version",
    type=click.IntRange(min=0),
    help="The version the stream must be at (0: it must be new). Needs a file with one message.",
)
@store_options
@json_option
def append(events_file: str, expected_version: int | None, dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Append the messages of EVENTS_FILE (or - for stdin) to the store.

    The file is a JSON array of append messages or JSON Lines, one message per
    line. All messages are appended in one transaction: if any is refused,
    none is written.

    \b
    Examples:
      jsproj append events.jsonl
      echo '{"id": "q1", "data": {"$type": "TownReached"}}' | jsproj append - --expected-version 3
    """
    from jsproj.engine.events_file import parse

    with json_errors(as_json):
        messages = parse(read_text(events_file))
        if expected_version is not None:
            if len(messages) != 1:
                raise errors.InputError(
                    f"--expected-version needs a file with one message; this one has {len(messages)}"
                )
            if not isinstance(messages[0].body, dict):
                raise errors.InvalidEventError(f"{messages[0].where}: an append message is an object")
            messages[0].body["expected_version"] = expected_version
        bodies = [m.body for m in messages]
        with open_store(dsn, schema) as store, _append_progress(bodies, quiet=as_json) as advance:
            results = store.append_all(bodies, where=[m.where for m in messages], on_progress=advance)
    events = sum(len(r.positions) for r in results)
    if as_json:
        echo_json({"messages": [r.to_dict() for r in results], "events": events})
        return
    title = f"appended {_count(events, 'event')} in {_count(len(results), 'message')}"
    table = Table(title=title, title_justify="left")
    for column in ("stream", "version", "positions"):
        table.add_column(column)
    for r in results[:SHOWN_MESSAGES]:
        span = f"{r.positions[0]}" if len(r.positions) == 1 else f"{r.positions[0]}..{r.positions[-1]}"
        table.add_row(r.stream_id, str(r.version), span)
    if len(results) > SHOWN_MESSAGES:
        table.add_row(f"... {len(results) - SHOWN_MESSAGES} more messages", "", "")
    Console().print(table)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


SHOWN_MESSAGES = 20
PROGRESS_FROM = 1000  # events: smaller files append too fast for a progress bar to help


@contextmanager
def _append_progress(bodies: list[Any], *, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr while a large file is appended (none for small ones or with --json)."""
    from jsproj.engine.events_file import event_count

    total = event_count(bodies)
    if quiet or total < PROGRESS_FROM:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("appending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("append", total=total)

        def advance(events: int) -> None:
            progress.advance(task, events)
            progress.refresh()  # each batch (~1 MB) shown as it is sent, not at the next tick

        yield advance


# -- jsproj import kurrentdb -------------------------------------------------


@click.group(name="import")
def import_group() -> None:
    """Import events from another event store (KurrentDB's, so far).

    \b
    Examples:
      jsproj import kurrentdb export.jsonl
    """


@import_group.command(name="kurrentdb")
@click.argument("export_file", type=click.Path(dir_okay=False, allow_dash=True))
@store_options
@json_option
def import_kurrentdb(export_file: str, dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Import EXPORT_FILE (or - for stdin): events read from KurrentDB, as JSON Lines.

    One line an event: {"streamId", "eventType", "eventId", "data", "metadata",
    "created"} (docs/from-kurrentdb.md#importing-events shows how to write it
    with KurrentDB's Python client). The whole file is checked first; events
    whose id the store holds already are left out, so importing it again
    appends nothing (and finishes an import stopped halfway); the rest are
    appended in the file's order, a transaction per 10,000 events, with the
    original time as timestamp and in metadata ($created).

    \b
    Examples:
      jsproj import kurrentdb export.jsonl
      jsproj import kurrentdb export.jsonl --json
    """
    from jsproj.store.kurrentdb_import import plan_import

    with json_errors(as_json), open_store(dsn, schema) as store:
        plan = plan_import(store, read_text(export_file))
        with _append_progress(plan.messages, quiet=as_json) as advance:
            done = plan.apply(store, on_progress=advance)
    if as_json:
        echo_json(done.to_dict())
        return
    Console().print(f"imported {_count(done.appended, 'event')} of {done.read}"
                    f" ({done.skipped} already in the store)")  # fmt: skip


# -- jsproj stream ----------------------------------------------------------


@click.command()
@click.argument("stream_id")
@click.option("--from-version", type=click.IntRange(min=1), help="First version to show.")
@click.option("--to-version", type=click.IntRange(min=0), help="Last version to show.")
@click.option("--include-archived", is_flag=True, help="Show the stream even if it is archived.")
@click.option(
    "--upcast",
    is_flag=True,
    help="Also show each event as projections see it, through the upcasters and renames (docs/dsl.md#upcasters).",
)
@click.option(
    "--projections",
    "projections_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --upcast: the upcasters of this folder (default: those deployed in the store).",
)
@store_options
@sandbox_options
@json_option
def stream(
    stream_id: str,
    from_version: int | None,
    to_version: int | None,
    include_archived: bool,
    upcast: bool,
    projections_dir: Path | None,
    dsn: str | None,
    schema: str | None,
    timeout: float,
    memory_limit: int,
    as_json: bool,
) -> None:
    """Show a stream: its type, version and events.

    JSON: {"id", "type", "version", "archived", "events": [{"position", "version",
    "timestamp", "metadata", "event": {"$type", "$id", ...}}]}. With
    --upcast each event also has "upcast": the event as projections see
    it (or "upcastError": the UpcastError its upcaster failed with); the
    stored events never change.

    \b
    Examples:
      jsproj stream quest-1
      jsproj stream quest-1 --json --from-version 3
      jsproj stream quest-1 --upcast
      jsproj stream quest-1 --upcast --projections projections/ --json
    """
    with json_errors(as_json):
        if projections_dir is not None and not upcast:
            raise errors.InputError("--projections goes with --upcast (the upcasters of that folder)")
    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        limits = {"timeout": timeout, "memory_limit": memory_limit}
        if upcast:
            found, seen = _upcast_stream(store, stream_id, from_version, to_version, projections_dir, limits,
                                         include_archived)  # fmt: skip
        else:
            found, seen = store.fetch_stream(stream_id, from_version, to_version, include_archived=include_archived), []
    if as_json:
        echo_json(found.to_dict() | ({"events": [u.to_dict() for u in seen]} if upcast else {}))
        return
    archived = " (archived)" if found.archived else ""
    title = f"{found.id}: a {found.type} stream at version {found.version}{archived}"
    table = Table(title=title, title_justify="left")
    for column in ("version", "position", "type", "timestamp", "data", *(("as projections see it",) if upcast else ())):
        table.add_column(column)
    for i, e in enumerate(found.events):
        shown = [json.dumps(e.data, ensure_ascii=False)]
        if upcast:
            shown.append(_seen_text(seen[i]))
        table.add_row(str(e.version), str(e.position), e.type, e.to_dict()["timestamp"], *shown)
    Console().print(table)


def _upcast_stream(store: EventStore, stream_id: str, from_version: int | None, to_version: int | None,
                   projections_dir: Path | None, limits: dict[str, Any],
                   include_archived: bool) -> tuple[Stream, list[Upcast]]:  # fmt: skip
    """The stream, and its events through the upcasters of a folder or of the deployment."""
    from jsproj.engine.projections import Projections, read_folder
    from jsproj.projections.upcasting import upcast_stream
    from jsproj.store.python_engine import deployed_sources

    if projections_dir is not None:
        sources = read_folder(projections_dir)
    else:
        with store.connection() as conn:
            sources = deployed_sources(conn)
        if not sources:
            raise errors.ProjectionError("no projections are deployed: run `jsproj deploy`, or give --projections DIR")
    with Projections(sources, **limits) as loaded:
        return upcast_stream(store, loaded, stream_id, from_version, to_version, include_archived=include_archived)


def _seen_text(seen: Upcast) -> str:
    """What projections see of an event, for the table: its type and fields, or the upcaster's error."""
    if seen.error is not None:
        return f"error: {seen.error.message}"
    return json.dumps({k: v for k, v in (seen.seen or {}).items() if k != "$id"}, ensure_ascii=False)


# -- jsproj events ----------------------------------------------------------


@click.command("events")
@log_filter_options
@click.option("--include-archived", is_flag=True, help="The events of archived streams too (docs/lifecycle.md).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="At most this many events.")
@click.option("--after", type=click.IntRange(min=0), default=0, metavar="POSITION",
              help="Continue after this position (the last a page showed; 0: from the start).")  # fmt: skip
@store_options
@json_option
def events(
    types: tuple[str, ...],
    stream_types: tuple[str, ...],
    since: str | None,
    until: str | None,
    metadata: str | None,
    include_archived: bool,
    limit: int,
    after: int,
    dsn: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """Read the log by what happened: event types, stream types, append time, metadata.

    The filters combine (all must hold). Events come in the log's gap-safe
    order (docs/reading.md): pass the last position shown to --after for the
    next page; a page never skips an event that commits later.

    JSON: {"events": [{"position", "streamId", "streamType", "version",
    "timestamp", "appendedAt", "metadata", "event": {"$type", "$id", ...}}],
    "after": the position to pass back for the next page}.

    \b
    Examples:
      jsproj events --type TownReached --type EndOfDay --limit 20
      jsproj events --stream-type Quest --since 2026-01-05T08:00:00Z --json
      jsproj events --metadata '{"user": "frodo"}' --after 1200
    """
    with json_errors(as_json):
        found_metadata = json_object(metadata)
        with open_store(dsn, schema, create=False) as store:
            found = store.read_all(after, limit, types=types or None, stream_types=stream_types or None,
                                   since=since, until=until, metadata=found_metadata,
                                   include_archived=include_archived)  # fmt: skip
    if as_json:
        echo_json({"events": [_log_event(e) for e in found], "after": found[-1].position if found else after})
        return
    table = Table(title=f"{_count(len(found), 'event')} after position {after}", title_justify="left")
    for column in ("position", "stream", "version", "type", "appended", "data"):
        table.add_column(column)
    for e in found:
        appended = iso(e.appended_at) if e.appended_at else ""
        table.add_row(str(e.position), e.stream_id, str(e.version), e.type, appended,
                      json.dumps(e.data, ensure_ascii=False))  # fmt: skip
    Console().print(table)


def _log_event(e: RecordedEvent) -> dict[str, Any]:
    return {"position": e.position, "streamId": e.stream_id, "streamType": e.stream_type, "version": e.version,
            "timestamp": iso(e.timestamp), "appendedAt": iso(e.appended_at) if e.appended_at else None,
            "metadata": e.metadata, "event": e.event}  # fmt: skip


# -- jsproj live ------------------------------------------------------------


@click.command()
@click.argument("name", shell_complete=complete_projection)
@click.argument("stream_id")
@click.option("--at-version", type=click.IntRange(min=0), help="Fold the events up to this version only.")
@click.option("--include-archived", is_flag=True, help="Fold the stream even if it is archived.")
@click.option(
    "--projections",
    "projections_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of projection files (default: the projections deployed in the store).",
)
@store_options
@sandbox_options
@json_option
def live(
    name: str,
    stream_id: str,
    at_version: int | None,
    include_archived: bool,
    projections_dir: Path | None,
    dsn: str | None,
    schema: str | None,
    timeout: float,
    memory_limit: int,
    as_json: bool,
) -> None:
    """Fold a stream's events with projection NAME now, storing nothing.

    Prints the document NAME makes of STREAM_ID (null if none).

    \b
    Examples:
      jsproj live Party quest-1
      jsproj live Party quest-1 --at-version 2 --json
      jsproj live Party quest-1 --projections projections/
    """
    from jsproj.engine.projections import Projections, read_folder
    from jsproj.projections.live import aggregate
    from jsproj.store.python_engine import deployed_sources

    limits: dict[str, Any] = {"timeout": timeout, "memory_limit": memory_limit}
    with json_errors(as_json):
        sources = read_folder(projections_dir) if projections_dir is not None else None
    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        if sources is None:
            with store.connection() as conn:
                sources = deployed_sources(conn)
            if not sources:
                raise errors.ProjectionError(
                    "no projections are deployed: run `jsproj deploy`, or give --projections DIR"
                )
        with Projections(sources, **limits) as loaded:
            document = aggregate(store, loaded, name, stream_id, at_version, include_archived=include_archived)
    if as_json:
        echo_json(document)
    else:
        Console().print_json(json.dumps(document, ensure_ascii=False))


COMMANDS = [append, import_group, stream, events, live]
