"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from jsproj import errors
from jsproj.config import explicit_dsn, resolve_dsn, resolve_replicas, resolve_schema
from jsproj.engine.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, MAX_TIMEOUT, MB
from jsproj.redact import remember
from jsproj.store.sync import EventStore

if TYPE_CHECKING:
    from rich.console import Console

    from jsproj.tools.postgres_cluster import Cluster

F = TypeVar("F", bound=Callable[..., Any])


class SummaryGroup(click.Group):
    """A group whose ``--help`` lists each command with its whole first sentence, wrapped (click cuts it to the
    terminal's width, mid-sentence, with "...")."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        rows = [(name, cmd.get_short_help_str(limit=1000)) for name, cmd in commands if cmd and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def complete_projection(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of a projection NAME: the projections deployed in the store the command would use
    (``--dsn``, ``JSPROJ_DSN``, jsproj.toml, else the embedded database if it runs: completing never starts a
    server), and none when it cannot be read."""
    from jsproj.projections.operations import deployed_names
    from jsproj.tools.default_database import default_cluster

    try:
        dsn = explicit_dsn(ctx.params.get("dsn"))
        if dsn is None:
            cluster = default_cluster()
            dsn = cluster.dsn if cluster.is_running() else None
        if dsn is None:
            return []
        with EventStore(dsn, schema=resolve_schema(ctx.params.get("schema")), max_size=1) as store:
            return [name for name in deployed_names(store) if name.startswith(incomplete)]
    except Exception:  # noqa: BLE001 -- a completion that fails offers nothing; the command itself will say why
        return []


def console_line(console: Console, line: str) -> None:
    """A log line through the console a progress bar draws on (above the bar), as it is: never wrapped."""
    console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")(command)


def projections_option(dest: str = "projections_dir") -> Callable[[F], F]:
    """``--projections DIR``: the folder of projection files (else JSPROJ_PROJECTIONS, jsproj.toml, projections)."""
    return click.option(
        "--projections",
        dest,
        type=click.Path(file_okay=False, path_type=Path),
        help="Folder of projection files.  [env var: JSPROJ_PROJECTIONS; default: projections in jsproj.toml, else "
        "projections]",
    )


if TYPE_CHECKING:  # click 8.5 types ParamType by its value; 8.2 (the lowest supported) is not generic at run time
    _FloatParam = click.ParamType[float]
else:
    _FloatParam = click.ParamType


class Seconds(_FloatParam):
    """A duration option: a finite number of seconds within [``low``, ``high``] (``nan`` and ``inf`` are refused:
    click's FloatRange lets ``nan`` through, every comparison with it being false)."""

    name = "seconds"

    def __init__(self, low: float, high: float = MAX_TIMEOUT) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not self.low <= seconds <= self.high:
            self.fail(f"{value!r} is not a number of seconds from {self.low:g} to {self.high:g}", param, ctx)
        return seconds


SECONDS = Seconds(0.001)


def sandbox_options(command: F) -> F:
    command = click.option(
        "--memory-limit",
        type=click.IntRange(min=16),
        default=DEFAULT_MEMORY_LIMIT // MB,
        show_default=True,
        envvar="JSPROJ_MEMORY_LIMIT",
        show_envvar=True,
        help="Memory limit of the projection sandbox, in MB.",
        callback=lambda ctx, param, megabytes: megabytes * MB,  # the commands get bytes, as the library takes
    )(command)
    return click.option(
        "--timeout",
        type=SECONDS,
        default=DEFAULT_TIMEOUT,
        show_default=True,
        envvar="JSPROJ_TIMEOUT",
        show_envvar=True,
        help="Time limit of one sandbox call, in seconds.",
    )(command)


def store_options(command: F) -> F:
    command = click.option(
        "--replica",
        metavar="DSN",
        multiple=True,
        expose_value=False,
        callback=_remember_replicas,
        help="A hot standby to read from (repeatable): the command's reads go to it once it has replayed the "
        "store's last write, the writes to --dsn (docs/replicas.md).  [default: replicas in jsproj.toml]",
    )(command)
    command = click.option(
        "--schema",
        metavar="NAME",
        help="Schema of the store's tables.  [env var: JSPROJ_SCHEMA; default: schema in jsproj.toml, else public]",
    )(command)
    return click.option(
        "--dsn",
        metavar="DSN",
        callback=_remember_dsn,
        help="PostgreSQL connection string or URL.  [env var: JSPROJ_DSN; default: dsn in jsproj.toml, else the "
        "embedded database]",
    )(command)


def _remember_replicas(ctx: click.Context, param: click.Parameter, replicas: tuple[str, ...]) -> None:
    for dsn in replicas:
        remember(dsn)
    ctx.meta["jsproj.replicas"] = replicas  # (open_store reads it: no command takes it as a parameter)


def _remember_dsn(ctx: click.Context, param: click.Parameter, dsn: str | None) -> str | None:
    remember(dsn)  # its password is hidden in every log line and error message from now on
    return dsn


def read_text(path: str) -> str:
    """An events file's text, or stdin's for ``-`` (UTF-8: else an EventsFileError saying where)."""
    from jsproj.engine.events_file import decode, read

    return decode(sys.stdin.buffer.read(), "stdin") if path == "-" else read(path)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False))


@contextmanager
def json_errors(as_json: bool) -> Iterator[None]:
    """With ``--json``, print a jsproj error as ``{"error": ...}`` on stdout too."""
    try:
        yield
    except errors.JsprojError as exc:
        if as_json:
            echo_json({"error": exc.to_dict()})
        raise


def announce_start(project: Path, cluster: Cluster) -> None:
    """One line on stderr when a command started the embedded database: which one it uses (no password:
    the embedded database trusts its private socket)."""
    click.echo(f"jsproj: started the embedded database of {project} ({cluster.url})", err=True)


def open_store(dsn: str | None, schema: str | None, *, create: bool = True, migrate: bool = True) -> EventStore:
    """The store named by the options; the embedded database is kept migrated (unless ``migrate=False``).
    Commands that only read pass ``create=False``: they never create an embedded database (a project
    without one is an error). The options are checked before any server starts."""
    explicit = explicit_dsn(dsn)
    chosen_schema = resolve_schema(schema)
    context = click.get_current_context(silent=True)
    replicas = resolve_replicas(context.meta.get("jsproj.replicas") if context else None)
    store = EventStore(resolve_dsn(dsn, create=create, on_start=announce_start), schema=chosen_schema, max_size=4,
                       replicas=replicas)  # fmt: skip
    if not explicit and migrate:
        store.migrate()
    return store


def json_object(text: str | None) -> dict[str, Any] | None:
    """--metadata's JSON object (a LogFilterError when it is not one)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise errors.LogFilterError(f"--metadata is not JSON: {exc}", option="metadata") from None
    if not isinstance(value, dict):
        raise errors.LogFilterError(f"--metadata must be a JSON object, not {text}", option="metadata")
    return value


def log_filter_options(command: F) -> F:
    """The filters of a read of the log by what happened (docs/reading.md): ``jsproj events``' and ``erase``'s."""
    for option in reversed([
        click.option("--type", "types", multiple=True, metavar="TYPE", help="Events of this type (repeat: up to 32)."),
        click.option("--stream-type", "stream_types", multiple=True, metavar="TYPE",
                     help="Events of streams of this type (repeat: up to 32)."),
        click.option("--since", metavar="TIME", help="Appended at or after TIME (ISO 8601 with a zone)."),
        click.option("--until", metavar="TIME", help="Appended before TIME (ISO 8601 with a zone)."),
        click.option("--metadata", metavar="JSON", help="Events whose metadata contains this JSON object."),
    ]):  # fmt: skip
        command = option(command)
    return command
