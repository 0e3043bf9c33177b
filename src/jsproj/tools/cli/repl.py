"""``jsproj repl``: an interactive session with prompt_toolkit (history, completion)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from jsproj.config import resolve_schema
from jsproj.tools.cli.project import projections_folder

if TYPE_CHECKING:
    from prompt_toolkit.completion import Completer

    from jsproj.tools.repl import Session


def _completer(session: Session) -> Completer:
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document

    from jsproj.tools.repl import COMMANDS

    class ReplCompleter(Completer):
        """Commands first; then projection names after `view`, event types inside `append`."""

        def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
            text = document.text_before_cursor
            word = document.get_word_before_cursor(WORD=True)
            if " " not in text.lstrip():
                candidates = list(COMMANDS)
            elif text.lstrip().startswith("view "):
                candidates = session.names
            elif text.lstrip().startswith("append "):
                word = document.get_word_before_cursor(pattern=_QUOTED)
                candidates = [f'"{t}"' for t in session.event_types()] + ['"$type"', '"data"', '"type"', '"id"']
            else:
                candidates = session.names
            for candidate in candidates:
                if candidate.startswith(word) and candidate != word:
                    yield Completion(candidate, start_position=-len(word))

    return ReplCompleter()


_QUOTED = re.compile(r'"?[\w$-]*$')


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option(
    "--projections",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of projection files.  [env var: JSPROJ_PROJECTIONS; default: projections in jsproj.toml, else "
    "projections]",
)
@click.option("--dsn", metavar="DSN", help="Work on this store instead of in memory (deploys the folder there).")
@click.option(
    "--schema",
    metavar="NAME",
    help="Schema of the store with --dsn.  [env var: JSPROJ_SCHEMA; default: schema in jsproj.toml, else public]",
)
def repl(folder: Path | None, projections: Path | None, dsn: str | None, schema: str | None) -> None:
    """Try projections interactively: append events, see what each projection makes of them.

    In memory by default (nothing is stored; .undo and .reset work); with
    --dsn on a real store (the folder is deployed there, async projections
    are caught up after each append). Projection files are reloaded when
    they change. Type .help for the commands; anything else is JavaScript,
    run in the sandbox with the DSL loaded.

    \b
    Examples:
      jsproj repl
      jsproj repl path/to/projections
      jsproj repl --dsn postgresql://localhost/scratch --schema sandbox
    \b
    Then, at the prompt:
      append {"id": "quest-1", "type": "Quest", "data": {"$type": "QuestStarted", "members": ["Rand"]}}
      view Party quest-1
      .undo
    """
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    from jsproj.tools.repl import MemorySession, StoreSession

    console = Console(highlight=False)
    target = projections_folder(folder, projections)
    session: Session
    if dsn:
        session = StoreSession(target, console, dsn, resolve_schema(schema))
        where = f"store {resolve_schema(schema)}"
    else:
        session = MemorySession(target, console)
        where = "memory"
    history_file = os.environ.get("JSPROJ_HISTORY", str(Path.home() / ".jsproj_history"))
    try:
        with open(history_file, "a", encoding="utf-8"):
            pass
        history: FileHistory | InMemoryHistory = FileHistory(history_file)
    except OSError:  # an unwritable home: history for this session only
        history = InMemoryHistory()
    prompt: PromptSession[str] = PromptSession(
        history=history, completer=_completer(session), complete_while_typing=False
    )
    console.print(f"jsproj repl: {', '.join(session.names)} from {target}, events in {where}. .help for commands.")
    try:
        while True:
            try:
                line = prompt.prompt("jsproj> ")
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if not session.handle(line):
                break
    finally:
        session.close()


COMMANDS = [repl]
