"""The command on the partitioned log: ``partition-log`` (docs/partitioning.md)."""

from __future__ import annotations

import click

from jsproj.config import resolve_dsn, resolve_schema
from jsproj.store import partitioning
from jsproj.tools.cli.common import announce_start, echo_json, json_errors, json_option, store_options


@click.command("partition-log")
@click.option("--size", type=click.IntRange(min=partitioning.MIN_SIZE), default=partitioning.DEFAULT_SIZE,
              show_default=True, help="Events a partition holds (converting).")  # fmt: skip
@click.option("--list", "listing", is_flag=True, help="Only list the partitions (none: the log is one table).")
@click.option("--add", is_flag=True, help="Make the next partition now (the store makes them ahead of need itself).")
@click.option("--detach-before", type=click.IntRange(min=1), metavar="POSITION",
              help="Detach the partitions wholly before POSITION (their events leave the log).")  # fmt: skip
@click.option("--tablespace", metavar="NAME", help="With --detach-before: move the detached tables there.")
@click.option("--lock-timeout", type=click.FloatRange(min=0.001), default=0.5, show_default=True,
              help="Seconds the conversion waits for its lock (appends queue behind it meanwhile) before it tries "
              "again.")  # fmt: skip
@store_options
@json_option
def partition_log(
    size: int,
    listing: bool,
    add: bool,
    detach_before: int | None,
    tablespace: str | None,
    lock_timeout: float,
    dsn: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """Partition the log (pge_events) by position, online; list, add or detach partitions.

    Without --list, --add or --detach-before: converts the store's log into a
    table range-partitioned by position, SIZE events a partition, while
    appends and reads go on. Appends wait only for the switch, a transaction
    of catalog changes (milliseconds whatever the log's size); the log as it
    was becomes the first partition. The store then makes the next partitions
    ahead of need by itself. Reads and the gap-safe order do not change.

    --detach-before takes partitions out of the log, kept as tables of their
    own (none that an async projection or a subscription has not read).

    JSON: the conversion {"bound", "partition", "events", "validateSeconds",
    "switchSeconds", "attempts"}; else {"partitions": [{"name", "lower",
    "upper", "tablespace", "bytes"}]}.

    \b
    Examples:
      jsproj partition-log --size 10000000
      jsproj partition-log --list
      jsproj partition-log --detach-before 20000000 --tablespace archive
    """
    if tablespace is not None and detach_before is None:
        raise click.UsageError("--tablespace goes with --detach-before")
    with json_errors(as_json):
        chosen = resolve_schema(schema)
        target = resolve_dsn(dsn, create=False, on_start=announce_start)
        if detach_before is not None:
            _show(partitioning.detach_before(target, chosen, detach_before, tablespace), "detached", as_json)
        elif add:
            partitioning.add_partition(target, chosen)
            _show(partitioning.partitions(target, chosen), "partitions", as_json)
        elif listing:
            _show(partitioning.partitions(target, chosen), "partitions", as_json)
        else:
            done = partitioning.partition_log(target, chosen, size, lock_timeout=lock_timeout)
            if as_json:
                echo_json(done.to_dict())
                return
            click.echo(f"partitioned the log of {done.events} events: {done.partition} starts at position "
                       f"{done.bound}; appends waited for the switch only ({done.switch_seconds:.3f} s, "
                       f"{done.attempts} attempt(s)); validation {done.validate_seconds:.3f} s")  # fmt: skip


def _show(found: list[partitioning.Partition], label: str, as_json: bool) -> None:
    if as_json:
        echo_json({label: [p.to_dict() for p in found]})
        return
    if not found:
        click.echo("the log is one table (not partitioned)" if label == "partitions" else f"{label}: none")
        return
    click.echo(f"{label}:")
    for p in found:
        lower = "start" if p.lower is None else str(p.lower)
        click.echo(f"  {p.name}: positions [{lower}, {p.upper})  {p.bytes / 1e6:.1f} MB  "
                   f"tablespace {p.tablespace or 'default'}")  # fmt: skip


COMMANDS = [partition_log]
