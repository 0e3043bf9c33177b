"""Commands for async projections: ``daemon``, ``rebuild``, ``status``, ``dead-letters``, ``retry``."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import click
import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jsproj import errors
from jsproj.cli.common import echo_json, json_errors, json_option, open_store, sandbox_options, store_options
from jsproj.daemon import DEFAULT_PAGE_SIZE, Daemon, build, lock_key, resume, retry_dead_letters
from jsproj.python_engine import deployed_sources
from jsproj.runtime.projections import Projections
from jsproj.store import EventStore

page_size_option = click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=DEFAULT_PAGE_SIZE,
    show_default=True,
    help="Events per engine call and transaction.",
)


def _connect(store: EventStore) -> psycopg.Connection:
    conn = psycopg.connect(store.dsn, autocommit=True)
    conn.execute(sql.SQL("set search_path = {}").format(sql.Identifier(store.schema)))
    return conn


@click.command()
@click.option("--until-caught-up", is_flag=True, help="Exit once everything appended before the start is processed.")
@click.option(
    "--projection", "names", multiple=True, metavar="NAME", help="Work on this async projection only (repeatable)."
)
@page_size_option
@click.option("--poll-interval", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Seconds between polls when no notification arrives.")  # fmt: skip
@store_options
@sandbox_options
def daemon(
    until_caught_up: bool,
    names: tuple[str, ...],
    page_size: int,
    poll_interval: float,
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
    """
    console = Console(stderr=True)
    progress = Progress(TextColumn("catching up"), TextColumn("{task.completed} events"), TimeElapsedColumn(),
                        console=console, transient=True, disable=not until_caught_up)  # fmt: skip
    task = progress.add_task("catch-up", total=None)
    with open_store(dsn, schema) as store:
        worker = Daemon(
            store.dsn, schema=store.schema, names=names or None, page_size=page_size, poll_interval=poll_interval,
            timeout=timeout, memory_limit=memory_limit * 1024 * 1024, log=lambda message: progress.console.print(
                message, markup=False, highlight=False),
            on_progress=lambda name, events: progress.advance(task, events),
        )  # fmt: skip
    previous = {sig: signal.signal(sig, lambda *_: worker.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        click.echo(f"daemon {worker.id} started", err=True)
        with progress:
            worker.run(until_caught_up=until_caught_up)
        done = f"caught up ({int(progress.tasks[0].completed)} events)" if until_caught_up else "stopped"
        click.echo(f"daemon {worker.id} {done}", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command()
@click.argument("name")
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
    limits = {"timeout": timeout, "memory_limit": memory_limit * 1024 * 1024}
    with json_errors(as_json), open_store(dsn, schema) as store, _connect(store) as control:
        row = control.execute(
            "select lifecycle, engine, on_error from pge_projection_definitions where name = %s", (name,)
        ).fetchone()
        if row is None:
            raise errors.UnknownProjectionError(f"there is no deployed projection {name!r}", projection=name)
        lifecycle, engine, on_error = row
        if lifecycle == "live":
            raise errors.ProjectionError(f"{name} is a live projection: it stores nothing to rebuild", projection=name)
        total = control.execute("select count(*) from pge_events").fetchone()[0]
        with Progress(
            TextColumn("rebuilding {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), disable=as_json, transient=False,
        ) as progress:  # fmt: skip
            task = progress.add_task(name, total=total)
            advance = lambda _, n: progress.advance(task, n)  # noqa: E731
            show = lambda n: progress.update(task, completed=n)  # noqa: E731
            events = _rebuild(control, store, name, lifecycle, engine, on_error, page_size, limits, advance, show)
            progress.update(task, completed=events, total=max(total, events))
    if as_json:
        echo_json({"projection": name, "events": events})
    else:
        click.echo(f"rebuilt {name} from {events} events")


def _rebuild(
    control: psycopg.Connection,
    store: EventStore,
    name: str,
    lifecycle: str,
    engine: str,
    on_error: str,
    page_size: int,
    limits: dict[str, Any],
    advance: Any,
    show: Any,
) -> int:
    with _connect(store) as work:
        work.autocommit = False
        if lifecycle == "inline":
            from jsproj.python_engine import rebuild as rebuild_inline

            with work.transaction():
                work.execute("lock table pge_events in share mode")
                if engine == "python":
                    with Projections(deployed_sources(work), **limits) as loaded:
                        return rebuild_inline(work, loaded, name)
                return work.execute("select pge_rebuild(%s)", (name,)).fetchone()[0]
        control.execute(
            """update pge_projection_progress set status = 'build', error = null, last_tx = '0', last_position = 0,
               events = 0, updated_at = now() where name = %s""",
            (name,),
        )
        if control.execute(sql.SQL("select pg_try_advisory_lock({})").format(lock_key(name))).fetchone()[0]:
            try:
                with Projections(deployed_sources(work), **limits) as loaded:
                    build(work, loaded, [name], {name: on_error}, page_size, on_progress=advance)
            finally:
                control.execute(sql.SQL("select pg_advisory_unlock({})").format(lock_key(name)))
    while True:  # built here (running or stopped now), or a daemon holds it: follow its build
        status, events, error = control.execute(
            "select status, events, error from pge_projection_progress where name = %s", (name,)
        ).fetchone()
        show(events)
        if status == "running":
            return events
        if status == "stopped":
            raise errors.ProjectionError(f"{name} stopped during its rebuild: {error.get('message')}", projection=name)
        time.sleep(0.2)


@click.command()
@store_options
@json_option
def status(dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Show every projection: lifecycle, engine, position, lag, dead letters, and which daemon holds it.

    \b
    Examples:
      jsproj status
      jsproj status --json | jq '.[] | select(.lag_events > 0)'
    """
    from jsproj.status import projection_status

    with json_errors(as_json), open_store(dsn, schema) as store:
        found = projection_status(store)
    if as_json:
        echo_json([s.to_dict() for s in found])
        return
    Console().print(status_table(found))


def status_table(found: list[Any]) -> Table:
    """The ``jsproj status`` table of :func:`jsproj.status.projection_status` rows."""
    table = Table(title="projections", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in ("lifecycle", "engine", "status", "position", "lag", "dead", "daemon"):
        table.add_column(column)
    for s in found:
        lag = "" if s.lag_events is None else f"{s.lag_events}" + (f" ({s.lag_seconds:.0f} s)" if s.lag_events else "")
        row_status = s.status + (f": {s.error.get('message', '')[:60]}" if s.error else "")
        position = "" if s.position is None else f"{s.position}/{s.high_water or 0}"
        table.add_row(s.name, s.lifecycle, s.engine, row_status, position, lag, str(s.dead_letters), s.holder or "")
    return table


@click.command("dead-letters")
@click.option("--projection", "name", metavar="NAME", help="Only this projection's.")
@store_options
@json_option
def dead_letters(name: str | None, dsn: str | None, schema: str | None, as_json: bool) -> None:
    """List the events async projections failed on and skipped (policy dead-letter).

    \b
    Examples:
      jsproj dead-letters
      jsproj dead-letters --projection Visitors --json
    """
    with json_errors(as_json), open_store(dsn, schema) as store, _connect(store) as conn:
        rows = conn.execute(
            """select id, projection, position, event_id::text, stream_id, event_type, error, created_at, retried_at
               from pge_dead_letters where %s::text is null or projection = %s order by projection, position""",
            (name, name),
        ).fetchall()
    letters = [
        {"id": r[0], "projection": r[1], "position": r[2], "eventId": r[3], "streamId": r[4], "eventType": r[5],
         "error": r[6], "createdAt": r[7].isoformat(), "retriedAt": r[8].isoformat() if r[8] else None}
        for r in rows
    ]  # fmt: skip
    if as_json:
        echo_json(letters)
        return
    table = Table(title=f"dead letters ({len(letters)})", title_justify="left")
    for column in ("id", "projection", "position", "stream", "event", "error"):
        table.add_column(column)
    for d in letters:
        table.add_row(str(d["id"]), d["projection"], str(d["position"]), d["streamId"], d["eventType"],
                      json.dumps(d["error"].get("message", ""))[:100])  # fmt: skip
    Console().print(table)


@click.command()
@click.argument("name")
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
    limits = {"timeout": timeout, "memory_limit": memory_limit * 1024 * 1024}
    with json_errors(as_json), open_store(dsn, schema) as store, _connect(store) as control:
        resumed = resume(control, name)
        requested = control.execute("update pge_dead_letters set retry = true where projection = %s", (name,)).rowcount
        applied = None
        if (
            requested
            and control.execute(sql.SQL("select pg_try_advisory_lock({})").format(lock_key(name))).fetchone()[0]
        ):
            try:
                with _connect(store) as work, Projections(deployed_sources(work), **limits) as loaded:
                    work.autocommit = False
                    applied = retry_dead_letters(work, loaded, name, requested_only=True)
            finally:
                control.execute(sql.SQL("select pg_advisory_unlock({})").format(lock_key(name)))
    report = {"projection": name, "resumed": bool(resumed), "deadLetters": requested, "applied": applied}
    if as_json:
        echo_json(report)
        return
    click.echo(f"{name}: " + ("resumed; " if resumed else "") + (
        f"{applied} of {requested} dead letters applied" if applied is not None
        else f"{requested} dead letters to retry by the daemon holding it" if requested else "no dead letters"
    ))  # fmt: skip


COMMANDS = [daemon, rebuild, status, dead_letters, retry]
