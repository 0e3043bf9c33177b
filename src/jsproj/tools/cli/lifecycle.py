"""Commands on a stream's lifecycle: ``archive``, ``unarchive``, ``delete``, ``erase`` and ``retention``
(docs/lifecycle.md)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import click

from jsproj import errors
from jsproj.store.lifecycle import StreamChange
from jsproj.tools.cli.common import (
    SummaryGroup,
    echo_json,
    json_errors,
    json_object,
    json_option,
    log_filter_options,
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
@click.argument("stream_id")
@click.option("--expected-version", type=click.IntRange(min=1), help="The version the stream must be at.")
@store_options
@json_option
def delete(stream_id: str, expected_version: int | None, dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Delete a stream (soft): append its tombstone, a $deleted event.

    Projections see it (a stream projection's document is deleted unless it
    handles $deleted); the events stay. Appends to it are then refused unless
    they re-create it: `jsproj append` with --expected-version the tombstone's
    version. To remove the data itself, see `jsproj erase`.

    JSON: {"streamId", "version", "positions"} (the tombstone's).

    \b
    Examples:
      jsproj delete cart-42
      jsproj delete cart-42 --expected-version 7 --json
    """
    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        done = store.delete_stream(stream_id, expected_version=expected_version)
    if as_json:
        echo_json({"streamId": done.stream_id, "version": done.version, "positions": done.positions})
    else:
        click.echo(f"deleted: {stream_id} (its tombstone is version {done.version})")


@click.command()
@click.argument("stream_id", required=False)
@click.option("--reason", required=True, help="Why (an erasure request's reference), recorded with the erasure.")
@log_filter_options
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


# -- jsproj retention ---------------------------------------------------------

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _age(ctx: click.Context, param: click.Parameter, text: str | None) -> timedelta | None:
    """--max-age: a whole number and a unit, s, m, h, d or w (30d)."""
    if text is None:
        return None
    found = re.fullmatch(r"(\d{1,9})([smhdw])", text.strip())
    if not found or int(found[1]) == 0:
        raise click.BadParameter(f"a whole number and a unit (s, m, h, d, w), like 30d; not {text!r}")
    return timedelta(seconds=int(found[1]) * UNITS[found[2]])


@click.group(cls=SummaryGroup)
def retention() -> None:
    """Retention per stream type: archive cold streams, or erase old events.

    The daemon applies the rules (every --retention-interval); `jsproj
    retention apply` applies them now. docs/lifecycle.md#retention says
    which to choose.

    \b
    Examples:
      jsproj retention set Order --archive --max-age 365d
      jsproj retention list
      jsproj retention apply
    """


@retention.command("set")
@click.argument("stream_type")
@click.option("--archive", "action", flag_value="archive", help="Archive the streams idle longer than --max-age.")
@click.option("--erase", "action", flag_value="erase", help="Erase the events past a limit (the views rebuilt).")
@click.option("--max-age", callback=_age, metavar="AGE", help="30d, 12h, 90m, 2w: appended longer ago.")
@click.option("--max-count", type=click.IntRange(min=1), help="Keep the last N events of each stream (--erase).")
@click.option("--truncate-before", type=click.IntRange(min=2), metavar="VERSION",
              help="Erase the events before this version of each stream (--erase).")  # fmt: skip
@store_options
@json_option
def set_rule(
    stream_type: str,
    action: str | None,
    max_age: timedelta | None,
    max_count: int | None,
    truncate_before: int | None,
    dsn: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """Set the retention of a stream type (replacing its rule).

    \b
    Examples:
      jsproj retention set Order --archive --max-age 365d
      jsproj retention set Session --erase --max-age 30d
      jsproj retention set Sensor --erase --max-count 1000
    """
    from jsproj.projections.retention import Rule, set_rule

    with json_errors(as_json):
        if action is None:
            raise errors.InputError("say what the rule does: --archive or --erase")
        with open_store(dsn, schema, create=False) as store:
            rule = set_rule(store, Rule(stream_type, action, max_age, max_count, truncate_before))
    if as_json:
        echo_json(rule.to_dict())
    else:
        click.echo(f"retention of {stream_type}: {action}")


@retention.command("list")
@store_options
@json_option
def list_rules(dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Show every stream type's retention.

    \b
    Examples:
      jsproj retention list --json
    """
    from jsproj.projections.retention import age_text, rules

    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        found = rules(store)
    if as_json:
        echo_json({"rules": [rule.to_dict() for rule in found]})
        return
    for rule in found:
        age = None if rule.max_age is None else age_text(rule.max_age)
        limits = {"max age": age, "max count": rule.max_count, "truncate before": rule.truncate_before}
        said = ", ".join(f"{key} {value}" for key, value in limits.items() if value is not None)
        click.echo(f"{rule.stream_type}: {rule.action} ({said})")


@retention.command("clear")
@click.argument("stream_type")
@store_options
def clear(stream_type: str, dsn: str | None, schema: str | None) -> None:
    """Drop the retention of a stream type.

    \b
    Examples:
      jsproj retention clear Order
    """
    from jsproj.projections.retention import clear_rule

    with json_errors(False), open_store(dsn, schema, create=False) as store:
        had = clear_rule(store, stream_type)
    click.echo(f"{'cleared' if had else 'no rule for'}: {stream_type}")


@retention.command("apply")
@store_options
@sandbox_options
@json_option
def apply(dsn: str | None, schema: str | None, timeout: float, memory_limit: int, as_json: bool) -> None:
    """Apply every rule now, and wait for the views they rebuild.

    \b
    Examples:
      jsproj retention apply --json
    """
    from jsproj.projections.retention import apply_rules

    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        done = apply_rules(store, timeout=timeout, memory_limit=memory_limit)
    if as_json:
        echo_json({"applied": [each.to_dict() for each in done]})
        return
    for each in done:
        what = f"{each.streams} streams archived" if each.action == "archive" else f"{each.events} events erased"
        click.echo(f"{each.stream_type}: {what}")


COMMANDS = [archive, unarchive, delete, erase, retention]
