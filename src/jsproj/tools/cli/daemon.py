"""Commands for async projections: ``daemon``, ``rebuild``, ``status``, ``dead-letters``, ``retry``."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jsproj import logs
from jsproj.follow.daemon import DEFAULT_PAGE_SIZE, Daemon
from jsproj.follow.daemon.metrics import DEFAULT_STALL_SECONDS, DaemonMetrics
from jsproj.projections import operations as control
from jsproj.tools.cli.common import (
    Seconds,
    complete_projection,
    console_line,
    echo_json,
    json_errors,
    json_option,
    open_store,
    sandbox_options,
    store_options,
)
from jsproj.tools.render import counted, dead_letter_groups_table, dead_letters_table, replicas_table, status_table

logger = logging.getLogger("jsproj.daemon")
LISTED = 100  # the dead letters --list shows unless --limit says otherwise

page_size_option = click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=DEFAULT_PAGE_SIZE,
    show_default=True,
    envvar="JSPROJ_PAGE_SIZE",
    show_envvar=True,
    help="The most events per engine call and transaction (pages start small and double while full).",
)


@click.command()
@click.option("--until-caught-up", is_flag=True, help="Exit once everything appended before the start is processed.")
@click.option(
    "--projection", "names", multiple=True, metavar="NAME", envvar="JSPROJ_DAEMON_PROJECTIONS", show_envvar=True,
    help="Work on this async projection only (repeatable; the variable: names separated by spaces).",
)  # fmt: skip
@page_size_option
@click.option("--poll-interval", type=Seconds(0.01), default=1.0, show_default=True,
              envvar="JSPROJ_POLL_INTERVAL", show_envvar=True,
              help="Seconds between polls when no notification arrives.")  # fmt: skip
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    metavar="PORT",
    envvar="JSPROJ_METRICS_PORT",
    show_envvar=True,
    help="Serve Prometheus metrics on /metrics and health on /healthz at this port (0: any free one).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST",
              envvar="JSPROJ_METRICS_HOST", show_envvar=True,
              help="The address the metrics server listens on.")  # fmt: skip
@click.option("--retention-interval", type=Seconds(0), default=3600.0, show_default=True,
              envvar="JSPROJ_RETENTION_INTERVAL", show_envvar=True,
              help="Seconds between applications of the retention rules, the first at the start (0: never; "
                   "docs/lifecycle.md#retention).")  # fmt: skip
@store_options
@sandbox_options
def daemon(
    until_caught_up: bool,
    names: tuple[str, ...],
    page_size: int,
    poll_interval: float,
    metrics_port: int | None,
    metrics_host: str,
    retention_interval: float,
    dsn: str | None,
    schema: str | None,
    timeout: float,
    memory_limit: int,
) -> None:
    """Keep async projections up to date.

    Run as many daemons as you like, on one machine or many: they share the
    async projections through PostgreSQL advisory locks, and take over the
    work of one that dies. SIGTERM finishes the current page and exits.

    \b
    Examples:
      jsproj daemon
      jsproj daemon --until-caught-up
      jsproj daemon --projection Traveled --page-size 5000
      jsproj daemon --metrics-port 9464 --log-format json
    """
    console = Console(stderr=True)
    bar = until_caught_up and console.is_terminal  # not a terminal: log lines alone, as they are
    progress = Progress(TextColumn("catching up"), TextColumn("{task.completed} events"), TimeElapsedColumn(),
                        console=console, transient=True, disable=not bar)  # fmt: skip
    task = progress.add_task("catch-up", total=None)
    applying: set[str] = set()  # the projections that applied events: the count is summed over them

    def advance(name: str, events: int) -> None:
        progress.advance(task, events)
        applying.add(name)

    hooks = DaemonMetrics(stall_seconds=max(DEFAULT_STALL_SECONDS, 3 * poll_interval))  # idle rounds: a poll apart
    with open_store(dsn, schema) as store:
        control.check_deployed(store, names)
        worker = Daemon(
            store.dsn, schema=store.schema, names=names or None, page_size=page_size, poll_interval=poll_interval,
            timeout=timeout, memory_limit=memory_limit, hooks=hooks,
            on_progress=advance, retention=_retention(store.dsn, store.schema, timeout, memory_limit),
            retention_interval=retention_interval,
        )  # fmt: skip
    previous = {sig: signal.signal(sig, lambda *_: worker.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = hooks.serve(worker, metrics_host, metrics_port) if metrics_port is not None else None
    try:
        settings = f"page size {page_size}, poll interval {poll_interval:g} s, projections: {', '.join(names) or 'all'}"
        metrics = f"; metrics on {server.url}/metrics" if server else ""
        logs.say(logger, logging.INFO, f"daemon {worker.id} started ({settings}){metrics}", daemon=worker.id,
                 schema=worker.schema)  # fmt: skip
        # Not a terminal: no bar at all (rich before 13.8 writes an empty line when a disabled bar ends).
        with progress if bar else nullcontext(), logs.writing_to(lambda line: console_line(console, line)):
            caught_up = worker.run(until_caught_up=until_caught_up)
        count = int(progress.tasks[0].completed)
        over = f" applied, summed over {len(applying)} projections" if len(applying) > 1 else ""
        done = f"caught up ({counted(count, 'event')}{over})" if caught_up else "stopped"
        logs.say(logger, logging.INFO, f"daemon {worker.id} {done}", daemon=worker.id, schema=worker.schema,
                 events=count, caught_up=caught_up)  # fmt: skip
    finally:
        if server is not None:
            server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _retention(dsn: str, schema: str, timeout: float, memory_limit: int) -> Callable[[], list[Any]]:
    """What the daemon's retention agent runs: the store's rules, applied without waiting for the async views
    they rebuild (the daemons build those, this one among them)."""

    def apply() -> list[Any]:
        from jsproj.projections.retention import apply_rules
        from jsproj.store.sync import EventStore

        with EventStore(dsn, schema=schema, max_size=1) as store:
            return apply_rules(store, timeout=timeout, memory_limit=memory_limit, wait=False)

    return apply


@click.command()
@click.argument("name", shell_complete=complete_projection)
@page_size_option
@store_options
@sandbox_options
@json_option
def rebuild(
    name: str, page_size: int, dsn: str | None, schema: str | None, timeout: float, memory_limit: int, as_json: bool
) -> None:
    """Rebuild projection NAME from the whole event log, while appends go on.

    An async projection is built into a staging table and swapped in at
    once: readers see the old documents until the new ones are complete. If
    a daemon holds the projection, it does the rebuild and this command
    follows it. An inline projection is rebuilt in one transaction (appends
    wait meanwhile).

    \b
    Examples:
      jsproj rebuild Traveled
    """
    with json_errors(as_json), open_store(dsn, schema) as store:
        control.check_deployed(store, [name])  # before the progress bar starts
        total = control.event_count(store)
        with Progress(
            TextColumn("rebuilding {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), disable=as_json, transient=False,
        ) as progress:  # fmt: skip
            task = progress.add_task(name, total=total)
            done = control.rebuild(
                store, name, page_size=page_size, timeout=timeout, memory_limit=memory_limit,
                on_progress=lambda events: progress.update(task, completed=events),
            )  # fmt: skip
            progress.update(task, completed=done.events, total=max(total, done.events))
    if as_json:
        echo_json(done.to_dict())
    else:
        click.echo(f"rebuilt {name} from {counted(done.events, 'event')}")


@click.command()
@store_options
@json_option
def status(dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Show every projection: lifecycle, engine, position, lag, dead letters, and which daemon holds it.

    Python subscriptions (``jsproj subscribers``) follow, with kind
    ``subscription``: their checkpoint, lag, runner and last error.

    \b
    Examples:
      jsproj status
      jsproj status --json | jq '.[] | select(.lagEvents > 0)'
    """
    from jsproj.projections.status import hints, projection_status, subscription_status

    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        found = projection_status(store) + subscription_status(store)
        lags = store.replica_lag()
    if as_json:
        echo_json([s.to_dict() for s in found])
        return
    console = Console()
    if found:
        console.print(status_table(found))
    if lags:
        console.print(replicas_table(lags))
    for hint in hints(found):
        console.print(f"hint: {hint}", style="dim", soft_wrap=True)


@click.command()
@store_options
@json_option
def replicas(dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Show each replica (--replica, or replicas in jsproj.toml): how far it has replayed, how far behind.

    The lag is in bytes of WAL behind the primary's, and the time since the
    last commit it replayed (docs/replicas.md). `jsproj status` shows the
    same table after the projections'.

    \b
    Examples:
      jsproj replicas --replica "host=standby-1 dbname=app"
      jsproj replicas --json
    """
    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        lags = store.replica_lag()
    if as_json:
        echo_json([lag.to_dict() for lag in lags])
    elif lags:
        Console().print(replicas_table(lags))
    else:
        click.echo("no replicas: give them with --replica, or replicas in jsproj.toml")


@click.command("dead-letters")
@click.option(
    "--projection", "name", metavar="NAME", shell_complete=complete_projection, help="Only this projection's."
)
@click.option("--list", "as_list", is_flag=True, help="Each dead letter, by projection and position (see --limit).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help=f"The most dead letters --list and --json show; 0: all (--list: {LISTED}, --json: all).",
)
@store_options
@json_option
def dead_letters(
    name: str | None, as_list: bool, limit: int | None, dsn: str | None, schema: str | None, as_json: bool
) -> None:
    """Show the events async projections failed on and skipped (policy dead-letter).

    By default, one row per projection and error (kind and message), with
    how many and at which positions, however many there are; --list shows
    each dead letter (the first 100, or --limit), --json every one.

    \b
    Examples:
      jsproj dead-letters
      jsproj dead-letters --list --projection Visitors --limit 20
      jsproj dead-letters --projection Visitors --json
    """
    shown = (limit or None) if limit is not None else (None if as_json else LISTED)
    with json_errors(as_json), open_store(dsn, schema, create=False) as store:
        if as_json or as_list:
            letters = control.list_dead_letters(store, name, shown)
            total = sum(group.count for group in control.group_dead_letters(store, name))
        else:
            groups = control.group_dead_letters(store, name)
    if as_json:
        echo_json([letter.to_dict() for letter in letters])
        return
    if not as_list:
        Console().print(dead_letter_groups_table(groups))
        if groups:
            click.echo("each one: jsproj dead-letters --list [--projection NAME] [--limit N]; retry: jsproj retry NAME")
        return
    title = f"dead letters ({total})" + (f", the first {len(letters)}" if len(letters) < total else "")
    Console().print(dead_letters_table(letters, title))


@click.command()
@click.argument("name", shell_complete=complete_projection)
@store_options
@sandbox_options
@json_option
def retry(name: str, dsn: str | None, schema: str | None, timeout: float, memory_limit: int, as_json: bool) -> None:
    """Resume projection NAME after a fix: restart it if it stopped, and apply its dead letters again.

    If a daemon holds the projection, it does the work; otherwise this command does.

    \b
    Examples:
      jsproj deploy && jsproj retry Visitors   # after fixing the handler that threw
    """
    with json_errors(as_json), open_store(dsn, schema) as store:
        done = control.retry(store, name, timeout=timeout, memory_limit=memory_limit)
    resumed, requested, applied = done.resumed, done.dead_letters, done.applied
    report = done.to_dict()
    if as_json:
        echo_json(report)
        return
    letters = counted(requested, "dead letter")
    click.echo(f"{name}: " + ("resumed; " if resumed else "") + (
        f"{applied} of {letters} applied" if applied is not None
        else f"{letters} to retry by the daemon holding it" if requested else "no dead letters"
    ))  # fmt: skip


COMMANDS = [daemon, rebuild, status, replicas, dead_letters, retry]
