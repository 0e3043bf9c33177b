"""``jsproj demo``: the main job, end to end, on the embedded default database."""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jsproj import logs
from jsproj.config import explicit_dsn, resolve_dsn
from jsproj.engine.events_file import event_count
from jsproj.store.identifiers import check_schema
from jsproj.tools.cli.common import announce_start, console_line, echo_json, json_errors, json_option
from jsproj.tools.render import counted

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quest"
DEMO_SCHEMA = "jsproj_demo"
TOWNS = ("Baerlon", "Whitebridge", "Caemlyn", "Moria", "Bree", "Rivendell", "Tar Valon", "Fal Dara", "Edoras")
HEROES = ("Rand", "Mat", "Perrin", "Egwene", "Nynaeve", "Frodo", "Sam", "Merry", "Pippin", "Aragorn", "Gimli")


def quest_log(quests: int, seed: int = 7) -> list[dict[str, Any]]:
    """A realistic, repeatable event log: quests that start, recruit, walk from town to town and end."""
    rng = random.Random(seed)  # noqa: S311 -- a repeatable demo log, not a secret
    messages: list[dict[str, Any]] = []
    for n in range(1, quests + 1):
        quest = f"quest-{n:03d}"
        day = f"2026-02-{1 + n % 28:02d}"
        start = rng.choice(TOWNS)
        events: list[dict[str, Any]] = [
            {"$type": "QuestStarted", "location": start, "members": rng.sample(HEROES, 2)},
            {"$type": "MembersJoined", "members": rng.sample(HEROES, 1)},
        ]
        for _ in range(rng.randint(2, 6)):
            events.append({"$type": "TownReached", "location": rng.choice(TOWNS), "traveled": rng.randint(3, 60)})
            events.append({"$type": "EndOfDay", "traveled": rng.randint(1, 12)})
        messages.append({"id": quest, "type": "Quest", "timestamp": f"{day}T08:00:00Z", "data": events})
        if n % 3 == 0:
            messages.append({"id": quest, "timestamp": f"{day}T20:00:00Z",
                             "data": {"$type": "QuestEnded", "location": rng.choice(TOWNS)}})  # fmt: skip
    return messages


@click.command()
@click.option(
    "--dsn",
    metavar="DSN",
    help="PostgreSQL to run in.  [env var: JSPROJ_DSN; default: dsn in jsproj.toml, else the embedded database]",
)
@click.option(
    "--schema",
    default=DEMO_SCHEMA,
    show_default=True,
    help="Schema the demo (re)creates; everything in it is dropped first.",
)
@click.option("--quests", type=click.IntRange(min=1, max=100_000), default=300, show_default=True,
              help="Quests in the generated event log.")  # fmt: skip
@json_option
def demo(dsn: str | None, schema: str, quests: int, as_json: bool) -> None:
    """Run the main job on the embedded database: deploy, append, run the daemon, read the views.

    Deploys the bundled quest projections (a stream projection and an event
    projection inline, an aggregate and a multi-stream view async, a live
    stream projection), appends a generated quest log, runs the async daemon
    until it has caught up, and shows the views, a live aggregation and the
    projections' status. Starts from an empty schema every run.

    \b
    Examples:
      jsproj demo
      jsproj demo --quests 5000
      jsproj demo --dsn postgresql://localhost/scratch --json
    """
    console = Console(stderr=as_json, quiet=as_json, soft_wrap=True)  # prose on one line, whatever the width
    with json_errors(as_json):
        result = _run(console, dsn, check_schema(schema), quests)
    if as_json:
        echo_json(result)


def _run(console: Console, dsn: str | None, schema: str, quests: int) -> dict[str, Any]:
    from jsproj.engine.projections import Projections, read_folder
    from jsproj.follow.daemon import Daemon
    from jsproj.projections.deploy import deploy
    from jsproj.projections.live import aggregate
    from jsproj.projections.status import projection_status
    from jsproj.projections.views import export_views
    from jsproj.store.migrate import recreate_schema
    from jsproj.store.sync import EventStore

    started = time.monotonic()
    embedded = explicit_dsn(dsn) is None
    if embedded:
        console.print("[dim]starting the embedded PostgreSQL (jsproj db status shows it)...[/dim]")
    url = resolve_dsn(dsn, on_start=announce_start)
    sources = read_folder(EXAMPLE / "projections")
    log = [*_example_log(), *quest_log(quests)]
    total = event_count(log)
    with EventStore(url, schema=schema, max_size=2) as store, Projections(sources) as loaded:
        with store.connection() as conn:  # a fresh schema every run
            recreate_schema(conn, schema)
        report = deploy(store, sources)
        added = counted(len(report.added), "projection")
        console.print(f"[bold]1. deployed[/bold] {added} to schema {schema}: " + ", ".join(
            f"{i.name} ({i.kind}, {i.lifecycle})" for i in loaded.infos))  # fmt: skip
        with _progress(console) as progress:
            task = progress.add_task("2. appending the quest log", total=total)
            for start in range(0, len(log), 100):
                batch = log[start : start + 100]
                store.append_all(batch)
                progress.advance(task, event_count(batch))
        # The daemon's INFO lines (units taken, caught up) are what the bar shows: only warnings print, above it.
        with _progress(console) as progress, logs.writing_to(lambda line: console_line(console, line),
                                                            level=logging.WARNING):  # fmt: skip
            task = progress.add_task("3. async daemon catching up", total=total)
            daemon = Daemon(url, schema=schema, poll_interval=0.05,
                            on_progress=lambda name, events: progress.advance(task, events))  # fmt: skip
            daemon.run(until_caught_up=True)
            progress.update(task, completed=total)
        views = export_views(store)
        journal = aggregate(store, loaded, "Journal", "quest-1")
        found = projection_status(store)
    seconds = time.monotonic() - started
    _show(console, views, journal, found)
    console.print(f"\n{counted(total, 'event')}, {counted(len(log), 'append')}, {seconds:.1f} s.")
    where = "" if embedded else f" --dsn '{url}'"
    console.print("\n[bold]Try next:[/bold]")
    console.print(f"  jsproj status --schema {schema}{where}")
    console.print(f"  jsproj view Party quest-001 --schema {schema}{where}")
    console.print(f"  jsproj live Journal quest-002 --schema {schema}{where}")
    console.print("  jsproj init my-project   # your own projections, specs and settings")
    console.print("  jsproj repl              # try events against projections interactively")
    return {
        "schema": schema,
        "events": total,
        "appends": len(log),
        "views": views,
        "live": {"Journal": {"quest-1": journal}},
        "status": [s.to_dict() for s in found],
    }


def _example_log() -> list[dict[str, Any]]:
    from jsproj.engine.events_file import parse

    return [message.body for message in parse((EXAMPLE / "events.jsonl").read_text("utf-8"))]


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _show(console: Console, views: dict[str, Any], journal: Any, found: list[Any]) -> None:
    from jsproj.tools.render import documents_table, status_table

    console.print()
    party = views["views"]["Party"]
    shown = dict(list(party.items())[:6])
    console.print(
        documents_table(f"Party: one document per quest (inline; {counted(len(party), 'document')}, first 6)", shown)
    )
    visitors = views["views"]["Visitors"]
    console.print(documents_table(f"Visitors: one document per town (async view; {counted(len(visitors), 'document')})",
                                  {town: visitors[town] | {"quests": len(visitors[town]["quests"])}
                                   for town in sorted(visitors)}))  # fmt: skip
    console.print(
        f"Arrival (inline event projection): {counted(len(views['views']['Arrival']), 'document')}, one per arrival"
    )
    console.print(f"Traveled (async aggregate): {json.dumps(views['aggregates']['Traveled'])}")
    console.print("\nJournal of quest-1, folded live from its events (stored nowhere):")
    for entry in (journal or {}).get("entries", []):
        console.print(f"  {entry}")
    console.print()
    console.print(status_table(found))


COMMANDS = [demo]
