"""``jsproj simulate``: run projections over an events file in memory."""

from __future__ import annotations

from pathlib import Path

import click

from jsproj.engine.simulation import DEFAULT_PAGE_SIZE
from jsproj.tools.cli.common import echo_json, json_errors, json_option, read_text, sandbox_options
from jsproj.tools.render import print_logs, print_views


@click.command()
@click.argument("projections_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("events_file", type=click.Path(dir_okay=False, allow_dash=True))
@json_option
@click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=DEFAULT_PAGE_SIZE,
    show_default=True,
    help="Events per engine call (the result does not depend on it).",
)
@click.option("--now", metavar="ISO-TIMESTAMP", help="Timestamp for messages without one (default: the current time).")
@sandbox_options
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
    from jsproj.engine.projections import Projections
    from jsproj.engine.simulation import simulate as run_simulation

    with json_errors(as_json):
        text = read_text(events_file)
        with Projections.from_folder(projections_dir, timeout=timeout, memory_limit=memory_limit) as loaded:
            try:
                views = run_simulation(loaded, text, page_size=page_size, now=now)
            finally:
                print_logs(loaded.sandbox.drain_logs())
    if as_json:
        echo_json(views)
    else:
        print_views(views)


COMMANDS = [simulate]
