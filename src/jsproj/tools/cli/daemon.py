"""Commands for async projections: ``daemon``, ``rebuild``, ``status``, ``dead-letters``, ``retry``."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from jsproj import logs
from jsproj.config import resolve_dsn
from jsproj.follow.daemon import DEFAULT_PAGE_SIZE, Daemon, Shared
from jsproj.follow.daemon.hooks import DaemonHooks
from jsproj.follow.daemon.metrics import DEFAULT_STALL_SECONDS, DaemonMetrics, MetricsServer
from jsproj.follow.fleet import DEFAULT_MAX_ATTACHED, DEFAULT_WORKERS, Catalog, Fleet, StoreKey, catalogs_for
from jsproj.follow.fleet.metrics import FleetMetrics
from jsproj.projections import operations as control
from jsproj.redact import remember
from jsproj.tools.cli.common import (
    Seconds,
    announce_start,
    complete_projection,
    console_line,
    echo_json,
    json_errors,
    json_option,
    open_store,
    sandbox_options,
    store_options,
)
from jsproj.tools.render import (
    counted,
    dead_letter_groups_table,
    dead_letters_table,
    replicas_table,
    status_table,
    stores_table,
)

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
@click.option("--store", "stores", multiple=True, metavar="SCHEMA", envvar="JSPROJ_DAEMON_STORES", show_envvar=True,
              help="Serve the store in this schema, of the database and of each --database (repeatable; instead "
                   "of --schema; docs/daemon.md#many-stores-one-daemon).")  # fmt: skip
@click.option("--all-stores", is_flag=True, help="Serve every jsproj store of the database (and of each --database), "
                                                 "stores added and dropped while it runs included.")  # fmt: skip
@click.option("--database", "databases", multiple=True, metavar="DSN", callback=lambda _c, _p, v: _secret(v),
              help="Another database whose stores to serve, with --store or --all-stores (repeatable).")  # fmt: skip
@click.option("--max-attached", type=click.IntRange(min=1), default=DEFAULT_MAX_ATTACHED, show_default=True,
              envvar="JSPROJ_MAX_ATTACHED", show_envvar=True,
              help="With many stores: the most holding connections (3 each) and a V8 worker at once.")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), default=DEFAULT_WORKERS, show_default=True,
              envvar="JSPROJ_DAEMON_WORKERS", show_envvar=True,
              help="With many stores: how many stores' turns run at once.")  # fmt: skip
@store_options
@sandbox_options
def daemon(
    until_caught_up: bool,
    names: tuple[str, ...],
    stores: tuple[str, ...],
    all_stores: bool,
    databases: tuple[str, ...],
    dsn: str | None,
    schema: str | None,
    **settings: Any,
) -> None:
    """Keep async projections up to date.

    Run as many daemons as you like, on one machine or many: they share the
    async projections through PostgreSQL advisory locks, and take over the
    work of one that dies. SIGTERM finishes the current page and exits.

    One daemon may serve many stores (--store, --all-stores): each gets a
    turn in round robin, and at most --max-attached hold connections at once.

    \b
    Examples:
      jsproj daemon
      jsproj daemon --until-caught-up
      jsproj daemon --projection Traveled --page-size 5000
      jsproj daemon --metrics-port 9464 --log-format json
      jsproj daemon --all-stores --database "dbname=tenants2"
    """
    if databases and not (stores or all_stores):
        raise click.UsageError("--database serves more stores: give --store or --all-stores too")
    if stores and all_stores:
        raise click.UsageError("--store and --all-stores: give one of them")
    chosen = Chosen(until_caught_up, names, settings)
    if stores or all_stores:
        base = resolve_dsn(dsn, create=False, on_start=announce_start)
        _serve_many(chosen, catalogs_for([base, *databases], stores or None))
    else:
        _serve_one(chosen, dsn, schema)


@dataclass(frozen=True)
class Chosen:
    """The daemon's options, whether it serves one store or many."""

    until_caught_up: bool
    names: tuple[str, ...]
    settings: dict[str, Any]  # page_size, poll_interval, metrics_*, retention_interval, max_attached, workers, limits

    def daemon(self, dsn: str, schema: str, hooks: DaemonHooks, **more: Any) -> Daemon:
        s = self.settings
        return Daemon(
            dsn, schema=schema, names=self.names or None, page_size=s["page_size"], poll_interval=s["poll_interval"],
            timeout=s["timeout"], memory_limit=s["memory_limit"], hooks=hooks,
            retention=_retention(dsn, schema, s["timeout"], s["memory_limit"]),
            retention_interval=s["retention_interval"], **more,
        )  # fmt: skip


def _serve_one(chosen: Chosen, dsn: str | None, schema: str | None) -> None:
    """One store: the daemon, with a progress bar on a terminal when it runs until caught up."""
    settings = chosen.settings
    hooks = DaemonMetrics(stall_seconds=_stall(settings["poll_interval"]))
    with open_store(dsn, schema) as store:
        control.check_deployed(store, chosen.names)
    with _catching_up(chosen.until_caught_up) as advance:
        worker = chosen.daemon(store.dsn, store.schema, hooks, on_progress=advance)
        described = f"page size {settings['page_size']}, poll interval {settings['poll_interval']:g} s, " \
                    f"projections: {', '.join(chosen.names) or 'all'}"  # fmt: skip
        with _serving(worker.stop, lambda: hooks.serve(worker, settings["metrics_host"], settings["metrics_port"]),
                      settings["metrics_port"]) as url:  # fmt: skip
            logs.say(logger, logging.INFO, f"daemon {worker.id} started ({described}){url}", daemon=worker.id,
                     schema=worker.schema)  # fmt: skip
            caught_up = worker.run(until_caught_up=chosen.until_caught_up)
        done = advance.summary() if caught_up else "stopped"
        logs.say(logger, logging.INFO, f"daemon {worker.id} {done}", daemon=worker.id, schema=worker.schema,
                 events=advance.count, caught_up=caught_up)  # fmt: skip


def _serve_many(chosen: Chosen, catalogs: list[Catalog]) -> None:
    """Many stores: a fleet of their daemons (docs/daemon.md#many-stores-one-daemon)."""
    settings = chosen.settings
    metrics = FleetMetrics(stall_seconds=_stall(settings["poll_interval"]))
    with _catching_up(chosen.until_caught_up) as advance:

        def make(key: StoreKey, shared: Shared) -> Daemon:
            return chosen.daemon(key.dsn, key.schema, metrics.hooks_for(key), shared=shared,
                                 on_progress=lambda name, n: advance(f"{key.label}.{name}", n))  # fmt: skip

        fleet = Fleet(catalogs, make, max_attached=settings["max_attached"], workers=settings["workers"],
                      poll_interval=settings["poll_interval"])  # fmt: skip
        with _serving(fleet.stop, lambda: metrics.serve(fleet, settings["metrics_host"], settings["metrics_port"]),
                      settings["metrics_port"]) as url:  # fmt: skip
            which = "every store" if catalogs[0].schemas is None else "stores " + ", ".join(sorted(catalogs[0].schemas))
            logs.say(logger, logging.INFO, f"daemon serving {which} of {len(catalogs)} database(s) started (at most "
                                           f"{settings['max_attached']} attached){url}")  # fmt: skip
            caught_up = fleet.run(until_caught_up=chosen.until_caught_up)
        served = f" of {len(fleet.slots)} stores" if caught_up else ""
        logs.say(logger, logging.INFO, f"daemon {advance.summary() + served if caught_up else 'stopped'}",
                 events=advance.count, caught_up=caught_up)  # fmt: skip


def _secret(dsns: tuple[str, ...]) -> tuple[str, ...]:
    """The DSNs, their passwords kept out of every message from now on."""
    for dsn in dsns:
        remember(dsn)
    return dsns


def _stall(poll_interval: float) -> float:
    return max(DEFAULT_STALL_SECONDS, 3 * poll_interval)  # idle rounds: a poll apart


class _Advance:
    """Counts the events applied (summed over projections) and moves the bar."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress, self.task, self.applying = progress, task, set[str]()
        self.count = 0

    def __call__(self, name: str, events: int) -> None:
        self.progress.advance(self.task, events)
        self.count += events
        self.applying.add(name)

    def summary(self) -> str:
        over = f" applied, summed over {len(self.applying)} projections" if len(self.applying) > 1 else ""
        return f"caught up ({counted(self.count, 'event')}{over})"


@contextmanager
def _catching_up(until_caught_up: bool) -> Iterator[_Advance]:
    """A bar of the events applied while catching up, on a terminal; the log lines go above it."""
    console = Console(stderr=True)
    bar = until_caught_up and console.is_terminal  # not a terminal: log lines alone, as they are
    progress = Progress(TextColumn("catching up"), TextColumn("{task.completed} events"), TimeElapsedColumn(),
                        console=console, transient=True, disable=not bar)  # fmt: skip
    advance = _Advance(progress, progress.add_task("catch-up", total=None))
    # Not a terminal: no bar at all (rich before 13.8 writes an empty line when a disabled bar ends).
    with progress if bar else nullcontext(), logs.writing_to(lambda line: console_line(console, line)):
        yield advance


@contextmanager
def _serving(stop: Callable[[], None], serve: Callable[[], MetricsServer], port: int | None) -> Iterator[str]:
    """SIGTERM and SIGINT stop the work; the metrics server runs meanwhile (when a port is given): its URL."""
    previous = {sig: signal.signal(sig, lambda *_: stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = serve() if port is not None else None
    try:
        yield f"; metrics on {server.url}/metrics" if server else ""
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
@click.option("--all-stores", is_flag=True, help="A line per store of the database (and of each --database): what "
                                                 "its projections have still to process, stopped, dead letters, "
                                                 "daemons (docs/daemon.md#many-stores-one-daemon).")  # fmt: skip
@click.option("--database", "databases", multiple=True, metavar="DSN", callback=lambda _c, _p, v: _secret(v),
              help="Another database whose stores to show, with --all-stores (repeatable).")  # fmt: skip
@store_options
@json_option
def status(all_stores: bool, databases: tuple[str, ...], dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Show every projection: lifecycle, engine, position, lag, dead letters, and which daemon holds it.

    Python subscriptions (``jsproj subscribers``) follow, with kind
    ``subscription``: their checkpoint, lag, runner and last error.
    With --all-stores, a line for each store instead (--json: each with
    its projections).

    \b
    Examples:
      jsproj status
      jsproj status --json | jq '.[] | select(.lagEvents > 0)'
      jsproj status --all-stores
    """
    from jsproj.projections.status import hints, projection_status, subscription_status

    if databases and not all_stores:
        raise click.UsageError("--database shows more stores: give --all-stores too")
    if all_stores:
        if schema is not None:
            raise click.UsageError("--all-stores shows every store: give no --schema")
        _status_of_stores(dsn, databases, as_json)
        return
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


def _status_of_stores(dsn: str | None, databases: tuple[str, ...], as_json: bool) -> None:
    """``jsproj status --all-stores``: a line per store (its projections too, in JSON)."""
    from jsproj.follow.fleet.status import stores_status

    with json_errors(as_json):
        found = stores_status([resolve_dsn(dsn, create=False), *databases])
    if as_json:
        echo_json([each.to_dict() for each in found])
        return
    Console().print(stores_table(found))


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
