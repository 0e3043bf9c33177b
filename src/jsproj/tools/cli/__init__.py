"""The ``jsproj`` command line.

Every command that prints data takes ``--json`` and then prints exactly one
JSON document on stdout, its keys in camelCase (``streamId``, ``lagEvents``:
as the append message and the engine's errors; new keys follow it). Errors are one line on stderr and a non-zero exit
code (``--verbose`` adds the traceback); with ``--json`` the error is also
printed on stdout as ``{"error": {...}}``. Commands that use the store take
``--dsn`` (else ``JSPROJ_DSN``, else the embedded default database) and
``--schema`` (else ``JSPROJ_SCHEMA``, else ``public``). Log lines (the
daemon's) go to stderr with time and level, as text or JSON (``--log-format``,
``JSPROJ_LOG_FORMAT``); ``--verbose`` and ``--log-format`` may come before or
after the command's name. No password of a DSN is ever printed.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import click

from jsproj import errors, logs
from jsproj.redact import redact, remember
from jsproj.store.translate import DatabaseError, untranslated
from jsproj.tools.cli import (
    daemon,
    dashboard,
    db,
    demo,
    deploying,
    events,
    lifecycle,
    partitioning,
    project,
    repl,
    simulate,
    subscribers,
    views,
)
from jsproj.tools.cli.common import SummaryGroup


class JsprojGroup(SummaryGroup):
    """Turns jsproj errors into one line on stderr instead of a traceback."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _add_global_options(cmd)
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (errors.JsprojError, OSError, DatabaseError) as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                click.echo(redact(traceback.format_exc()), err=True, nl=False)
            if isinstance(exc, DatabaseError):  # one not translated where it happened: still one line
                message = untranslated(exc)
            else:
                message = str(exc) if isinstance(exc, errors.JsprojError) else _os_error(exc)
            click.echo(f"error: {redact(message)}", err=True)
            ctx.exit(1)


def _os_error(exc: OSError) -> str:
    if exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc)


def _set_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """``--verbose`` / ``--log-format``, given before or after the command's name: kept on the root context,
    and the ``jsproj`` loggers configured with them."""
    root = ctx.find_root()
    root.ensure_object(dict)
    if param.name == "verbose" and value:
        root.obj["verbose"] = True
    elif param.name == "log_format" and value is not None:
        root.obj["log_format"] = value
    logs.configure(root.obj.get("log_format", "text"), verbose=root.obj.get("verbose", False))


def _global_options(*, env: bool) -> list[click.Option]:
    return [
        click.Option(["--verbose"], is_flag=True, default=False, expose_value=False, callback=_set_global,
                     help="Show tracebacks for errors, and debug log lines."),
        click.Option(["--log-format"], type=click.Choice(logs.FORMATS), default=None, expose_value=False,
                     envvar="JSPROJ_LOG_FORMAT" if env else None, callback=_set_global, show_envvar=env,
                     help="Log lines as text or one JSON object per line.  [default: text]"),
    ]  # fmt: skip


def _add_global_options(cmd: click.Command) -> None:
    """The global options on a command (and the commands of a group in it), so they may follow its name."""
    taken = {opt for param in cmd.params for opt in getattr(param, "opts", [])}
    cmd.params.extend(o for o in _global_options(env=False) if not taken & set(o.opts))
    for sub in getattr(cmd, "commands", {}).values():
        _add_global_options(sub)


@click.group(cls=JsprojGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jsproj")
@click.pass_context
def main(ctx: click.Context) -> None:
    """jsproj: event-sourced read models with projections in plain JavaScript.

    Projections written once in the JavaScript DSL of Postgres.Projections run
    unchanged in Python (sandboxed V8), in PostgreSQL and in Node.js.
    """
    ctx.ensure_object(dict)
    if ctx.invoked_subcommand == "daemon":  # [jsproj.daemon] of jsproj.toml: below flags and JSPROJ_* variables
        ctx.default_map = {"daemon": _daemon_defaults()}
    remember(os.environ.get("JSPROJ_DSN"))  # its password is hidden in every message, as --dsn's is


main.params.extend(_global_options(env=True))


for module in (
    demo,
    project,
    repl,
    simulate,
    db,
    events,
    lifecycle,
    partitioning,
    deploying,
    views,
    daemon,
    dashboard,
    subscribers,
):
    for command in module.COMMANDS:
        main.add_command(command)


def _daemon_defaults() -> dict[str, object]:
    """``[jsproj.daemon]`` as the daemon command's option values (its ``projections`` are ``--projection``)."""
    from jsproj.config import project_file

    try:
        settings = project_file().daemon
    except errors.JsprojError as exc:
        raise click.UsageError(exc.message) from None
    return {("names" if key == "projections" else key): value for key, value in settings.items()}
