"""``jsproj demo``: the main job, on the bundled example."""

from __future__ import annotations

from pathlib import Path

import click

from jsproj.cli.common import echo_json, json_option
from jsproj.render import print_views

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@click.command()
@json_option
def demo(as_json: bool) -> None:
    """Run the bundled example: a quest log through every kind of projection.

    For now this simulates the example in memory; `jsproj simulate` runs
    your own projections the same way.
    """
    from jsproj.simulation import simulate as run_simulation

    folder = EXAMPLES / "quest"
    views = run_simulation(folder / "projections", Path(folder / "events.jsonl"))
    if as_json:
        echo_json(views)
        return
    click.echo(f"Simulating {folder / 'projections'} over {folder / 'events.jsonl'}\n")
    print_views(views)
    click.echo("\nTry next:")
    click.echo(f"  jsproj simulate {folder / 'projections'} {folder / 'events.jsonl'} --json")
    click.echo(f"  node js/bin/simulate.js {folder / 'projections'} {folder / 'events.jsonl'}")


COMMANDS = [demo]
