"""The ``jsproj`` command line.

Every command that prints data takes ``--json`` and then prints exactly one
JSON document on stdout. Errors are one line on stderr and a non-zero exit
code (``--verbose`` adds the traceback); with ``--json`` the error is also
printed on stdout as ``{"error": {...}}``. Commands that use the store take
``--dsn`` (else ``JSPROJ_DSN``, else the embedded default database) and
``--schema`` (else ``JSPROJ_SCHEMA``, else ``public``).
"""

from __future__ import annotations

import traceback
from typing import Any

import click
import psycopg

from jsproj import errors
from jsproj.cli import daemon, db, demo, deploying, events, project, repl, simulate, subscribers, views
from jsproj.translate import redact


class JsprojGroup(click.Group):
    """Turns jsproj errors into one line on stderr instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (errors.JsprojError, OSError, psycopg.Error) as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            if isinstance(exc, psycopg.Error):  # one not translated where it happened: still one line
                message = f"PostgreSQL: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            else:
                message = str(exc) if isinstance(exc, errors.JsprojError) else _os_error(exc)
            click.echo(f"error: {redact(message)}", err=True)
            ctx.exit(1)


def _os_error(exc: OSError) -> str:
    if exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc)


@click.group(cls=JsprojGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="jsproj")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """jsproj: event-sourced read models with projections in plain JavaScript.

    Projections written once in the JavaScript DSL of Postgres.Projections run
    unchanged in Python (sandboxed V8), in PostgreSQL and in Node.js.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


def _verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().ensure_object(dict)["verbose"] = True


def _with_verbose(command: click.Command) -> click.Command:
    """``--verbose`` taken after the command too (``jsproj append x --verbose``), as before it."""
    command.params.append(
        click.Option(
            ["--verbose"], is_flag=True, expose_value=False, callback=_verbose, help="Show tracebacks for errors."
        )
    )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_verbose(sub)
    return command


for module in (demo, project, repl, simulate, db, events, deploying, views, daemon, subscribers):
    for command in module.COMMANDS:
        main.add_command(_with_verbose(command))
