"""The ``jsproj`` command line.

Every command that prints data takes ``--json`` and then prints exactly one
JSON document on stdout. Errors are one line on stderr and a non-zero exit
code (``--verbose`` adds the traceback); with ``--json`` the error is also
printed on stdout as ``{"error": {...}}``.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from jsproj import errors
from jsproj.render import print_logs, print_views
from jsproj.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from jsproj.simulation import DEFAULT_PAGE_SIZE

EXAMPLES = Path(__file__).resolve().parent / "examples"


class JsprojGroup(click.Group):
    """Turns jsproj errors into one line on stderr instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (errors.JsprojError, OSError) as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            message = str(exc) if isinstance(exc, errors.JsprojError) else _os_error(exc)
            click.echo(f"error: {message}", err=True)
            ctx.exit(1)


def _os_error(exc: OSError) -> str:
    if exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc)


def _read_events(events_file: str) -> str:
    if events_file == "-":
        return sys.stdin.read()
    return Path(events_file).read_text("utf-8")


def _json_error(exc: errors.JsprojError) -> None:
    click.echo(json.dumps({"error": exc.to_dict()}))


sandbox_options = [
    click.option(
        "--timeout",
        type=click.FloatRange(min=0.001),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Time limit of one sandbox call, in seconds.",
    ),
    click.option(
        "--memory-limit",
        type=click.IntRange(min=16),
        default=DEFAULT_MEMORY_LIMIT // (1024 * 1024),
        show_default=True,
        help="Memory limit of the sandbox, in MB.",
    ),
]


def with_sandbox_options(command: Any) -> Any:
    for option in reversed(sandbox_options):
        command = option(command)
    return command


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


@main.command()
@click.argument("projections_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("events_file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
@click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=DEFAULT_PAGE_SIZE,
    show_default=True,
    help="Events per engine call (the result does not depend on it).",
)
@click.option("--now", metavar="ISO-TIMESTAMP", help="Timestamp for messages without one (default: the current time).")
@with_sandbox_options
def simulate(
    projections_dir: Path,
    events_file: str,
    as_json: bool,
    page_size: int,
    now: str | None,
    timeout: float,
    memory_limit: int,
) -> None:
    """Run every projection in PROJECTIONS_DIR over EVENTS_FILE, in memory.

    EVENTS_FILE (or - for stdin) is a JSON array of append messages, or JSON
    Lines with one message per line:

    \b
      {"id": "quest-1", "type": "Quest", "data": [{"$type": "QuestStarted"}]}

    Stream ids and event $ids missing from the file are assigned. Prints the
    views: {"views": {name: {id: document}}, "aggregates": {name: document}}.

    \b
    Examples:
      jsproj simulate projections/ events.jsonl
      jsproj simulate projections/ events.json --json | jq .aggregates
    """
    from jsproj.projections import Projections
    from jsproj.simulation import simulate as run_simulation

    text = _read_events(events_file)
    try:
        with Projections.from_folder(
            projections_dir, timeout=timeout, memory_limit=memory_limit * 1024 * 1024
        ) as loaded:
            try:
                views = run_simulation(loaded, text, page_size=page_size, now=now)
            finally:
                print_logs(loaded.sandbox.drain_logs())
    except errors.JsprojError as exc:
        if as_json:
            _json_error(exc)
        raise
    if as_json:
        click.echo(json.dumps(views, ensure_ascii=False))
    else:
        print_views(views)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def demo(as_json: bool) -> None:
    """Run the bundled example: a quest log through every kind of projection.

    For now this simulates the example in memory; `jsproj simulate` runs
    your own projections the same way.
    """
    from jsproj.simulation import simulate as run_simulation

    folder = EXAMPLES / "quest"
    views = run_simulation(folder / "projections", Path(folder / "events.jsonl"))
    if as_json:
        click.echo(json.dumps(views, ensure_ascii=False))
        return
    click.echo(f"Simulating {folder / 'projections'} over {folder / 'events.jsonl'}\n")
    print_views(views)
    click.echo("\nTry next:")
    click.echo(f"  jsproj simulate {folder / 'projections'} {folder / 'events.jsonl'} --json")
    click.echo(f"  node js/bin/simulate.js {folder / 'projections'} {folder / 'events.jsonl'}")


if __name__ == "__main__":
    main()
