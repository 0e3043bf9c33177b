"""Commands on a stream's lifecycle: ``archive`` and ``unarchive`` (docs/lifecycle.md)."""

from __future__ import annotations

import click

from jsproj.store.lifecycle import StreamChange
from jsproj.tools.cli.common import echo_json, json_errors, json_option, open_store, store_options


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


COMMANDS = [archive, unarchive]
