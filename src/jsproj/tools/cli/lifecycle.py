"""Commands on a stream's lifecycle: ``archive``, ``unarchive`` and ``erase`` (docs/lifecycle.md)."""

from __future__ import annotations

from typing import Any

import click

from jsproj import errors
from jsproj.store.lifecycle import StreamChange
from jsproj.tools.cli.common import (
    echo_json,
    json_errors,
    json_object,
    json_option,
    open_store,
    sandbox_options,
    store_options,
)


def _report(change: StreamChange, done: str, already: str, as_json: bool) -> None:
    if as_json:
        echo_json(change.to_dict())
    else:
        click.echo(f"{done if change.changed else already}: {change.stream_id}")


@click.command()
@click.argument("stream_id")
@store_options
@json_option
def archive(stream_id: str, dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Archive a stream: its events stay, but reads, live folds, builds and rebuilds leave them out.

    Appends to it are refused until it is unarchived. The views already built
    from it are kept as they are: `jsproj rebuild NAME` rebuilds one without
    it. Archiving an archived stream changes nothing.

    JSON: {"streamId", "changed", "archivedAt"}.

    \b
    Examples:
      jsproj archive quest-1
      jsproj stream quest-1 --include-archived
    """
    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        change = store.archive_stream(stream_id)
    _report(change, "archived", "already archived", as_json)


@click.command()
@click.argument("stream_id")
@store_options
@json_option
def unarchive(stream_id: str, dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Unarchive a stream: its events are read again, and it takes appends.

    Projections that had not reached its events fold them when they do;
    views built while it was archived leave them out until rebuilt.

    JSON: {"streamId", "changed", "archivedAt": null}.

    \b
    Examples:
      jsproj unarchive quest-1
    """
    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        change = store.unarchive_stream(stream_id)
    _report(change, "unarchived", "not archived", as_json)


@click.command()
@click.argument("stream_id", required=False)
@click.option("--reason", required=True, help="Why (an erasure request's reference), recorded with the erasure.")
@click.option("--type", "types", multiple=True, metavar="TYPE", help="Events of this type (repeat: up to 32).")
@click.option("--stream-type", "stream_types", multiple=True, metavar="TYPE", help="Events of streams of this type.")
@click.option("--since", metavar="TIME", help="Appended at or after TIME (ISO 8601 with a zone).")
@click.option("--until", metavar="TIME", help="Appended before TIME (ISO 8601 with a zone).")
@click.option("--metadata", metavar="JSON", help="Events whose metadata contains this JSON object.")
@click.option("--dry-run", is_flag=True, help="Say what would be erased and rebuilt; change nothing.")
@click.option("--yes", is_flag=True, help="Erase: without it (or --dry-run) nothing is erased.")
@store_options
@sandbox_options
@json_option
def erase(
    stream_id: str | None,
    reason: str,
    types: tuple[str, ...],
    stream_types: tuple[str, ...],
    since: str | None,
    until: str | None,
    metadata: str | None,
    dry_run: bool,
    yes: bool,
    dsn: str | None,
    schema: str | None,
    timeout: float,
    memory_limit: int,
    as_json: bool,
) -> None:
    """Erase events for good: a stream's, and/or those the filters choose.

    Their data and metadata are replaced by a marker (positions, versions,
    types and times stay), the errors kept about them too, and every view
    they reached is rebuilt: inline ones in the erasure's transaction, async
    ones beside and swapped in. The erasure is recorded with --reason, never
    with the erased data. Nothing is erased without --yes.

    JSON: {"erasure", "events", "rebuilt", "swapped"}.

    \b
    Examples:
      jsproj erase customer-42 --reason "request 2026-118" --dry-run
      jsproj erase customer-42 --reason "request 2026-118" --yes
      jsproj erase --stream-type Order --metadata '{"customer": "42"}' --reason "request 2026-118" --yes
    """
    from jsproj.projections.erasure import erase as erase_events

    chosen: dict[str, Any] = {"types": types or None, "stream_types": stream_types or None, "since": since,
                              "until": until}  # fmt: skip
    with json_errors(as_json):
        chosen["metadata"] = json_object(metadata)
        if not (yes or dry_run):
            raise errors.InputError("erasing cannot be undone: pass --yes to erase (or --dry-run to see what would be)")
        with open_store(dsn, schema, create=False) as store:
            done = erase_events(store, stream_id, reason=reason, timeout=timeout, memory_limit=memory_limit,
                                dry_run=dry_run, **chosen)  # fmt: skip
    if as_json:
        echo_json(done.to_dict())
        return
    rebuilt = ", ".join(done.rebuilt + done.swapped) or "none"
    if dry_run:
        click.echo(f"would erase {done.events} events; would rebuild: {rebuilt}")
    else:
        click.echo(f"erased {done.events} events (erasure {done.erasure}); rebuilt: {rebuilt}")


COMMANDS = [archive, unarchive, erase]
