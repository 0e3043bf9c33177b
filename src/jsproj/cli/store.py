"""Commands on the store: ``db``, ``migrate``, ``append``, ``stream``, ``live``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from jsproj import errors
from jsproj.cli.common import echo_json, json_errors, json_option, read_text, sandbox_options, store_options
from jsproj.config import ENGINES, explicit_dsn, resolve_dsn, resolve_engine, resolve_folder, resolve_schema
from jsproj.store import EventStore


def open_store(dsn: str | None, schema: str | None) -> EventStore:
    """The store named by the options; the embedded database is kept migrated."""
    explicit = explicit_dsn(dsn)
    store = EventStore(resolve_dsn(dsn), schema=resolve_schema(schema), max_size=4)
    if not explicit:
        store.migrate()
    return store


# -- jsproj db --------------------------------------------------------------


@click.group()
def db() -> None:
    """Manage the embedded default database (a private PostgreSQL for this project).

    Commands that get no --dsn and no JSPROJ_DSN use it, starting it when
    needed. Its data lives in .jsproj/pgdata of the project folder (the
    nearest folder with jsproj.toml or .jsproj/), or under /var/lib/jsproj when
    the server runs as the postgres user and cannot reach the project.

    \b
    Examples:
      jsproj db start
      psql "$(jsproj db url)"
      jsproj db stop
    """


def _cluster_info(running: bool) -> dict[str, object]:
    from jsproj.embedded import default_cluster

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
    from jsproj import embedded

    with json_errors(as_json):
        cluster = embedded.ensure_running()
        with EventStore(cluster.dsn, max_size=1) as store:
            store.migrate()
    info = _cluster_info(True)
    if as_json:
        echo_json(info)
    else:
        click.echo(f"PostgreSQL is running (data: {info['dataDir']})\nurl: {info['url']}")


@db.command("stop")
@json_option
def db_stop(as_json: bool) -> None:
    """Stop the embedded database."""
    from jsproj import embedded

    with json_errors(as_json):
        embedded.stop()
    if as_json:
        echo_json(_cluster_info(False))
    else:
        click.echo("PostgreSQL is stopped")


@db.command("status")
@json_option
def db_status(as_json: bool) -> None:
    """Say whether the embedded database runs, and where it lives."""
    from jsproj.embedded import default_cluster

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
    from jsproj.embedded import default_cluster

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
    with json_errors(as_json), EventStore(resolve_dsn(dsn), schema=resolve_schema(schema), max_size=1) as store:
        applied = store.migrate()
    names = [f"{m.version:04d}_{m.name}" for m in applied]
    if as_json:
        echo_json({"schema": store.schema, "applied": names})
    else:
        click.echo(f"applied {', '.join(names)}" if names else f"schema {store.schema} is up to date")


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
    from jsproj.eventsfile import parse

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
    table = Table(title=f"appended {events} events in {len(results)} messages", title_justify="left")
    for column in ("stream", "version", "positions"):
        table.add_column(column)
    for r in results[:SHOWN_MESSAGES]:
        span = f"{r.positions[0]}" if len(r.positions) == 1 else f"{r.positions[0]}..{r.positions[-1]}"
        table.add_row(r.stream_id, str(r.version), span)
    if len(results) > SHOWN_MESSAGES:
        table.add_row(f"... {len(results) - SHOWN_MESSAGES} more messages", "", "")
    Console().print(table)


SHOWN_MESSAGES = 20
PROGRESS_FROM = 1000  # events: smaller files append too fast for a progress bar to help


@contextmanager
def _append_progress(bodies: list[Any], *, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr while a large file is appended (none for small ones or with --json)."""
    from jsproj.eventsfile import event_count

    total = event_count(bodies)
    if quiet or total < PROGRESS_FROM:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("appending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("append", total=total)
        yield lambda events: progress.advance(task, events)


# -- jsproj stream ----------------------------------------------------------


@click.command()
@click.argument("stream_id")
@click.option("--from-version", type=click.IntRange(min=1), help="First version to show.")
@click.option("--to-version", type=click.IntRange(min=0), help="Last version to show.")
@store_options
@json_option
def stream(
    stream_id: str, from_version: int | None, to_version: int | None, dsn: str | None, schema: str | None, as_json: bool
) -> None:
    """Show a stream: its type, version and events.

    JSON: {"id", "type", "version", "events": [{"position", "version",
    "timestamp", "metadata", "event": {"$type", "$id", ...}}]}.

    \b
    Examples:
      jsproj stream quest-1
      jsproj stream quest-1 --json --from-version 3
    """
    with json_errors(as_json), open_store(dsn, schema) as store:
        found = store.fetch_stream(stream_id, from_version, to_version)
    if as_json:
        echo_json(found.to_dict())
        return
    table = Table(title=f"{found.id}: a {found.type} stream at version {found.version}", title_justify="left")
    for column in ("version", "position", "type", "timestamp", "data"):
        table.add_column(column)
    for e in found.events:
        table.add_row(
            str(e.version), str(e.position), e.type, e.to_dict()["timestamp"], json.dumps(e.data, ensure_ascii=False)
        )
    Console().print(table)


# -- jsproj live ------------------------------------------------------------


@click.command()
@click.argument("name")
@click.argument("stream_id")
@click.option("--at-version", type=click.IntRange(min=0), help="Fold the events up to this version only.")
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
    from jsproj.inline import deployed_sources
    from jsproj.live import aggregate
    from jsproj.projections import Projections, read_folder

    limits = {"timeout": timeout, "memory_limit": memory_limit * 1024 * 1024}
    with json_errors(as_json), open_store(dsn, schema) as store:
        if projections_dir is not None:
            sources = read_folder(projections_dir)
        else:
            with store.pool.connection() as conn:
                sources = deployed_sources(conn)
            if not sources:
                raise errors.ProjectionError(
                    "no projections are deployed: run `jsproj deploy`, or give --projections DIR"
                )
        with Projections(sources, **limits) as loaded:
            document = aggregate(store, loaded, name, stream_id, at_version)
    if as_json:
        echo_json(document)
    else:
        Console().print_json(json.dumps(document, ensure_ascii=False))


# -- jsproj deploy / sql ----------------------------------------------------


lifecycle_option = click.option(
    "--lifecycle",
    "lifecycles",
    multiple=True,
    metavar="NAME=inline|async|live",
    help="Override the lifecycle a projection declares (repeatable).",
)


@click.command()
@click.option(
    "--projections",
    "projections_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of projection files.  [env: JSPROJ_PROJECTIONS; jsproj.toml; default: projections]",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    help="What runs inline projections: this Python process, or the database (plpython3u, PLV8 or PL/JS)."
    "  [env: JSPROJ_ENGINE; jsproj.toml; default: python]",
)
@lifecycle_option
@click.option(
    "--on-error",
    "on_error",
    multiple=True,
    metavar="NAME=stop|dead-letter",
    help="What an async projection does when a handler throws: stop (the default) or dead-letter the event and go on.",
)
@store_options
@sandbox_options
@json_option
def deploy(
    projections_dir: Path | None,
    engine: str | None,
    lifecycles: tuple[str, ...],
    on_error: tuple[str, ...],
    dsn: str | None,
    schema: str | None,
    timeout: float,
    memory_limit: int,
    as_json: bool,
) -> None:
    """Deploy the projections of a folder to the store.

    Migrates the schema, checks every projection in the sandbox, registers
    them, creates their document tables and rebuilds the documents of new and
    changed ones from the event log (appends wait meanwhile). Projections no
    longer in the folder are removed with their documents.

    \b
    Examples:
      jsproj deploy
      jsproj deploy --projections src/projections --engine plpython
      jsproj deploy --lifecycle Journal=live --lifecycle Traveled=inline
    """
    from jsproj.deploy import deploy as run_deploy
    from jsproj.deploy import parse_lifecycles, parse_on_error
    from jsproj.projections import read_folder

    with json_errors(as_json):
        sources = read_folder(resolve_folder("projections", projections_dir))
        with open_store(dsn, schema) as store:
            report = run_deploy(
                store, sources, engine=resolve_engine(engine), lifecycles=parse_lifecycles(lifecycles),
                on_error=parse_on_error(on_error), timeout=timeout, memory_limit=memory_limit * 1024 * 1024,
            )  # fmt: skip
    if as_json:
        echo_json(report.to_dict())
        return
    for label in ("added", "changed", "removed", "unchanged"):
        names = getattr(report, label)
        if names:
            click.echo(f"{label}: {', '.join(names)}")
    for name, events in report.rebuilt.items():
        click.echo(f"rebuilt {name} from {events} events")
    if report.building:
        click.echo(f"built by the daemon (jsproj daemon): {', '.join(report.building)}")
    click.echo(f"engine: {report.engine}")


@click.command("sql")
@click.option(
    "--projections",
    "projections_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of projection files.  [env: JSPROJ_PROJECTIONS; jsproj.toml; default: projections]",
)
@click.option(
    "--engine",
    type=click.Choice([engine for engine in ENGINES if engine != "python"]),
    required=True,
    help="The in-database engine (docs/deploy.md says which to choose where).",
)
@click.option("--schema", metavar="NAME", default="public", show_default=True, help="Schema of the store's tables.")
@lifecycle_option
def sql_command(projections_dir: Path | None, engine: str, schema: str, lifecycles: tuple[str, ...]) -> None:
    """Print the SQL that deploys a folder's projections with an in-database engine.

    For a DBA to review and apply by hand, in one transaction:

    \b
    Examples:
      jsproj sql --engine plpython > deploy.sql
      psql -v ON_ERROR_STOP=1 -1 -f deploy.sql
    """
    from jsproj.deploy import deployment_sql, parse_lifecycles
    from jsproj.projections import Projections, read_folder

    sources = read_folder(resolve_folder("projections", projections_dir))
    with Projections(sources) as loaded:
        click.echo(
            deployment_sql(
                loaded.sources, loaded.infos, engine=engine, schema=schema, lifecycles=parse_lifecycles(lifecycles)
            ),
            nl=False,
        )


# -- jsproj view / export ---------------------------------------------------


@click.command()
@click.argument("name")
@click.argument("document_id", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Documents per page.")
@click.option("--after", metavar="ID", help="Show the page after this document id.")
@store_options
@json_option
def view(
    name: str,
    document_id: str | None,
    limit: int,
    after: str | None,
    dsn: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """Show one document of projection NAME, or a page of them (in id order).

    \b
    Examples:
      jsproj view Party quest-1
      jsproj view Party --json --limit 1000
      jsproj view Traveled
    """
    from jsproj.render import documents_table
    from jsproj.views import fetch_view

    with json_errors(as_json), open_store(dsn, schema) as store:
        found = fetch_view(store, name, document_id, limit=limit if document_id is None else None, after=after)
    if as_json:
        echo_json(found)
    elif document_id is not None:
        Console().print_json(json.dumps(found, ensure_ascii=False))
    else:
        Console().print(
            documents_table(
                f"{name} ({len(found)} documents{', more with --after' if len(found) == limit else ''})", found
            )
        )


@click.command()
@store_options
@json_option
def export(dsn: str | None, schema: str | None, as_json: bool) -> None:
    """Print every stored view and aggregate: {"views": {name: {id: doc}}, "aggregates": {name: doc}}.

    The same shape as `jsproj simulate --json`, so a store can be compared
    with a simulation of its events.

    \b
    Examples:
      jsproj export --json > views.json
      diff <(jsproj export --json | jq -S .) <(jsproj simulate projections events.jsonl --json | jq -S .)
    """
    from jsproj.render import print_views
    from jsproj.views import export_views

    with json_errors(as_json), open_store(dsn, schema) as store:
        exported = export_views(store)
    if as_json:
        echo_json(exported)
    else:
        print_views(exported)


COMMANDS = [db, migrate, append, stream, live, deploy, sql_command, view, export]
