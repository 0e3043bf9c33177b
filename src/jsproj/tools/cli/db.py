"""Commands on the embedded database and the schema: ``db`` and ``migrate``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from jsproj.config import resolve_dsn, resolve_schema
from jsproj.store.sync import EventStore
from jsproj.tools.cli.common import SummaryGroup, announce_start, echo_json, json_errors, json_option, store_options

if TYPE_CHECKING:
    from jsproj.tools.default_database import Database

# -- jsproj db --------------------------------------------------------------


@click.group(cls=SummaryGroup)
def db() -> None:
    """Manage the embedded default database (a private PostgreSQL for this project).

    Commands that get no --dsn and no JSPROJ_DSN use it, starting it when
    needed. Its data lives in .jsproj/pgdata of the project folder (the
    nearest folder, from the current one up, with jsproj.toml; else the
    current folder itself: a parent's .jsproj/ alone is another project's),
    or under /var/lib/jsproj when the server runs as the postgres user and
    cannot reach the project.

    \b
    Examples:
      jsproj db start
      psql "$(jsproj db url)"
      jsproj db stop
      jsproj db list                  # every embedded database of this user
      jsproj db stop --all
    """


def _cluster_info(running: bool) -> dict[str, object]:
    from jsproj.tools.default_database import default_cluster

    cluster = default_cluster()
    return {
        "running": running,
        "initialised": cluster.is_initialised(),
        "dataDir": str(cluster.data_dir),
        "socketDir": str(cluster.socket_dir),
        "pid": cluster.pid() if running else None,
        "dsn": cluster.dsn,
        "url": cluster.url,
    }


@db.command("start")
@json_option
def db_start(as_json: bool) -> None:
    """Start the embedded database (creating and migrating it if needed)."""
    from jsproj.tools import default_database as embedded

    started: list[bool] = []  # its own output says where: no stderr line as other commands print
    with json_errors(as_json):
        cluster = embedded.ensure_running(on_start=lambda project, cluster: started.append(True))
        with EventStore(cluster.dsn, max_size=1) as store:
            store.migrate()
    info = {**_cluster_info(True), "started": bool(started)}
    if as_json:
        echo_json(info)
    else:
        state = "started" if started else "already running"
        click.echo(f"PostgreSQL {state} (data: {info['dataDir']})\nurl: {info['url']}")


@db.command("stop")
@click.option("--all", "every", is_flag=True, help="Stop every embedded database of this user (see `jsproj db list`).")
@json_option
def db_stop(every: bool, as_json: bool) -> None:
    """Stop the embedded database (with --all: every one this user runs).

    \b
    Examples:
      jsproj db stop
      jsproj db stop --all --json     # {"stopped": [{"project": ..., ...}]}
    """
    from jsproj.tools import default_database as embedded

    if every:
        with json_errors(as_json):
            stopped = embedded.stop_all()
        if as_json:
            echo_json({"stopped": [_database_info(one, running=False) for one in stopped]})
        else:
            click.echo("\n".join(f"stopped {one.project}" for one in stopped) or "no embedded database was running")
        return
    with json_errors(as_json):
        embedded.stop()
    if as_json:
        echo_json(_cluster_info(False))
    else:
        click.echo("PostgreSQL is stopped")


def _database_info(one: Database, *, running: bool) -> dict[str, object]:
    return {
        "project": str(one.project),
        "running": running,
        "pid": one.cluster.pid() if running else None,
        "dataDir": str(one.cluster.data_dir),
        "url": one.cluster.url,
    }


@db.command("list")
@json_option
def db_list(as_json: bool) -> None:
    """List every embedded database of this user: its project folder, whether it runs, its data and URL.

    Databases are recorded when they start (in ~/.local/state/jsproj/databases,
    or $XDG_STATE_HOME/jsproj/databases); folders that no longer exist are
    dropped from the list.

    \b
    Examples:
      jsproj db list
      jsproj db list --json           # {"databases": [{"project", "running", "pid", "dataDir", "url"}]}
    """
    from jsproj.tools import default_database as embedded

    with json_errors(as_json):
        found = [_database_info(one, running=one.running) for one in embedded.databases()]
    if as_json:
        echo_json({"databases": found})
    elif not found:
        click.echo("no embedded database yet (`jsproj db start` creates one)")
    else:
        for one in found:
            state = f"running (pid {one['pid']})" if one["running"] else "stopped"
            click.echo(f"{one['project']}: {state}, data: {one['dataDir']}\n  url: {one['url']}")


@db.command("status")
@json_option
def db_status(as_json: bool) -> None:
    """Say whether the embedded database runs, and where it lives."""
    from jsproj.tools.default_database import default_cluster

    with json_errors(as_json):
        info = _cluster_info(default_cluster().is_running())
    if as_json:
        echo_json(info)
    elif info["running"]:
        click.echo(f"running (pid {info['pid']}, data: {info['dataDir']})\nurl: {info['url']}")
    else:
        click.echo("stopped" + ("" if info["initialised"] else " (not created yet: `jsproj db start` creates it)"))


@db.command("url")
@json_option
def db_url(as_json: bool) -> None:
    """Print the embedded database's connection URL (for psql and other clients)."""
    from jsproj.tools.default_database import default_cluster

    cluster = default_cluster()
    if as_json:
        echo_json({"url": cluster.url, "dsn": cluster.dsn})
    else:
        click.echo(cluster.url)


# -- jsproj migrate ---------------------------------------------------------


@click.command()
@store_options
@json_option
def migrate(dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Install or upgrade the store's schema (idempotent).

    \b
    Examples:
      jsproj migrate
      jsproj migrate --dsn postgresql://app@db/events --schema events
    """
    with json_errors(as_json):
        chosen = resolve_schema(schema)  # before the embedded database may start
        with EventStore(resolve_dsn(dsn, on_start=announce_start), schema=chosen, max_size=1) as store:
            applied = store.migrate()
    names = [m.label for m in applied]
    if as_json:
        echo_json({"schema": store.schema, "applied": names, "functions": applied.functions})
    elif names or applied.functions:
        done = [f"applied {', '.join(names)}"] if names else []
        done += [f"created the functions of {', '.join(applied.functions)}"] if applied.functions else []
        click.echo("; ".join(done))
    else:
        click.echo(f"schema {store.schema} is up to date")


COMMANDS = [db, migrate]
