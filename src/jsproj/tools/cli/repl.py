"""``jsproj repl``: an interactive session with prompt_toolkit (history, completion)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from jsproj.config import resolve_schema
from jsproj.tools.cli.project import projections_folder

if TYPE_CHECKING:
    from prompt_toolkit.completion import Completer
    from prompt_toolkit.history import History

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

OLD_HISTORY = ".jsproj_history"  # in the home folder: where the history was kept before the state folder


def history_file() -> tuple[Path, Path | None]:
    """The REPL's history file: ``$JSPROJ_HISTORY``, else ``repl_history`` in jsproj's state folder (beside
    the registry of embedded databases, :func:`~jsproj.tools.default_database.state_dir`); and the old
    ``~/.jsproj_history`` when its lines were moved there now (None otherwise).

    The old file moves once, when the new one does not exist yet: copied beside it, linked in under its
    name (which fails if another REPL made it meanwhile: then the old file stays), only then removed.
    """
    from jsproj.tools.default_database import state_dir

    named = os.environ.get("JSPROJ_HISTORY")
    if named:
        return Path(named), None
    path, old = state_dir() / "repl_history", Path.home() / OLD_HISTORY
    if path.exists() or not old.is_file():
        return path, None
    path.parent.mkdir(parents=True, exist_ok=True)
    copy = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(old, copy)
        os.link(copy, path)
    except FileExistsError:
        return path, None
    finally:
        copy.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # a home one cannot write in: the old file stays, its lines copied
        old.unlink()
    return path, old


def _history(console: Console) -> History:
    """The prompt's history, in :func:`history_file`; in memory (this session only) where it cannot be written."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    try:
        path, moved = history_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError:  # an unwritable home: history for this session only
        return InMemoryHistory()
    if moved is not None:
        console.print(f"[dim]the REPL's history moved from {moved} to {path}[/dim]", highlight=False, soft_wrap=True)
    return FileHistory(str(path))


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
    prompt: PromptSession[str] = PromptSession(
        history=_history(console), completer=_completer(session), complete_while_typing=False
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
