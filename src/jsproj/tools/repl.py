"""The REPL's sessions: append events, look at views, reload projections, evaluate JavaScript.

:class:`MemorySession` keeps the event log and the documents in memory (an
append is applied like an inline projection: all projections or none);
:class:`StoreSession` works on a real store. Both answer :meth:`Session.handle`
for one input line; the prompt itself lives in ``jsproj.tools.cli.repl``.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from jsproj import errors
from jsproj.engine.projections import Projections, read_folder
from jsproj.engine.sandbox import DEFAULT_TIMEOUT
from jsproj.engine.simulation import apply_page, now_iso
from jsproj.errors import ReplError, closest_name
from jsproj.tools.render import counted, documents_table

COMMANDS = {
    "append": "append <message JSON>   append a message (or a JSON list of them); shows what each projection changed",
    "view": "view NAME [ID]          a projection's documents, or one of them",
    "events": "events                  the events appended so far",
    ".load": ".load DIR               load the projections of another folder",
    ".reload": ".reload                 load the projection files again (done by itself when one changes)",
    ".reset": ".reset                  forget every event (in memory)",
    ".undo": ".undo                   take the last append back (in memory)",
    ".list": ".list                   the loaded projections",
    ".status": ".status                 where each projection stands (a store session: --dsn)",
    ".dead-letters": ".dead-letters [NAME]    the events async projections skipped (a store session)",
    ".retry": ".retry NAME             restart a stopped projection, apply its dead letters again (a store session)",
    ".rebuild": ".rebuild NAME           rebuild a projection from the whole log (a store session)",
    ".help": ".help                   this help",
    ".exit": ".exit                   leave (or Ctrl-D)",
}
# JavaScript's reserved words, and the words of its grammar a statement may begin with: a line beginning
# with one is JavaScript however close it is to a command (`try {`, `delete x.y`).
JS_KEYWORDS = frozenset(
    "async await break case catch class const continue debugger default delete do else enum export extends false"
    " finally for function if import in instanceof let new null return static super switch this throw true try"
    " typeof var void while with yield".split()
)
# The shape of a command, never JavaScript's: `.word` (no statement begins with a dot and a letter), or a
# word, a space, then a word, a number, a string or a brace (after a name JavaScript takes an operator, `(`,
# `[`, `.`, `;`, a template, `in` or `instanceof`: `apend {}` or `vew Party` cannot be JavaScript).
_DOTTED = re.compile(r"\.[A-Za-z][\w-]*")
_WORD_THEN_ARGUMENT = re.compile(r"([A-Za-z_$][\w$]*)\s+(?!(?:in|instanceof)(?![\w$]))[\w$\"'{]")
STORE_ONLY = "the projections of a store are operated in a store session (jsproj repl --dsn ...)"
HELP = "\n".join(
    [
        "Commands:",
        *(f"  {line}" for line in COMMANDS.values()),
        "Anything else is JavaScript, run in the sandbox with the DSL (`projections.aggregate(...)`",
        "defines a scratch projection; the loaded ones are not touched), except a line shaped like a command",
        "that is none (`apend {...}`, `.relaod`): that one is not run, and the command it is close to is named.",
    ]
)


def mistyped(text: str) -> str | None:
    """What to answer a line shaped like a command (``_DOTTED``, ``_WORD_THEN_ARGUMENT``) that is none: ``unknown
    command 'apend': did you mean 'append'?``; None for anything else (JavaScript, evaluated). A word that is not
    close to a command is left to JavaScript (which says what is wrong), a dotted one never is."""
    dotted = _DOTTED.match(text)
    word = dotted.group(0) if dotted else _command_like_word(text)
    if word is None or word in COMMANDS or word in (".exit", ".quit"):
        return None
    by_bare = {name.lstrip("."): name for name in [*COMMANDS, ".quit"]}
    close = closest_name(word.lstrip("."), by_bare)
    if close is not None:
        return f"unknown command {word!r}: did you mean {by_bare[close]!r}?"
    return f"unknown command {word!r}: .help lists the commands" if dotted else None


def _command_like_word(text: str) -> str | None:
    """The first word of a line that is a word and an argument (``apend {...}``), unless it is JavaScript's."""
    found = _WORD_THEN_ARGUMENT.match(text)
    return found.group(1) if found and found.group(1) not in JS_KEYWORDS else None


def event_ids(count: int) -> list[str]:
    """Ids for a message's ``count`` events, made as ``pge_event_ids`` makes them (sql/functions/events.sql).

    The UUID version-7 layout: the time in ms, version 7, 12 bits of the
    sub-millisecond time, the variant, then a counter from a random start.
    """
    us = time.time_ns() // 1000
    high = (us // 1000) << 16 | 7 << 12 | (us % 1000) * 4096 // 1000
    low = 2 << 62 | secrets.randbits(61)
    return [str(uuid.UUID(int=high << 64 | low + n)) for n in range(1, count + 1)]


class Session:
    """What both sessions share: the projection folder, reloading, evaluating, commands."""

    def __init__(self, folder: Path, console: Console, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.folder = folder
        self.console = console
        self.timeout = timeout  # of each sandbox call: a runaway loop typed at the prompt stops there
        self.projections: Projections | None = None
        self._mtimes: dict[str, float] = {}
        self.load(folder)

    # -- projections ------------------------------------------------------------

    def load(self, folder: Path) -> None:
        """Load (or reload) the projections of ``folder``; the old ones stay if the new ones are broken."""
        sources = read_folder(folder)
        loaded = Projections(sources, timeout=self.timeout)
        if self.projections is not None:
            self.projections.close()
        self.projections, self.folder = loaded, folder
        self._mtimes = self._scan()
        self.loaded()

    def loaded(self) -> None:
        """Called after every (re)load."""

    def _scan(self) -> dict[str, float]:
        try:
            return {p.name: p.stat().st_mtime for p in self.folder.iterdir() if p.suffix == ".js"}
        except OSError:
            return {}

    def reload_if_changed(self) -> bool:
        """Reload when a projection file was added, removed or changed since the last load."""
        if self._scan() == self._mtimes:
            return False
        self.console.print(f"[dim]{self.folder}: projection files changed, reloading[/dim]")
        try:
            self.load(self.folder)
        except errors.JsprojError as exc:
            self._mtimes = self._scan()  # do not retry until the next change
            self.console.print(f"[red]error:[/red] {exc} [dim](the previous projections stay loaded)[/dim]")
            return False
        self.console.print(f"loaded {', '.join(self.names) or 'no projections'}")
        return True

    @property
    def names(self) -> list[str]:
        return self.projections.names if self.projections else []

    def event_types(self) -> list[str]:
        """Every event type a loaded projection handles (for completion)."""
        types: set[str] = set()
        for info in self.projections.infos if self.projections else []:
            types.update(info.event_types)
        return sorted(types)

    # -- input ------------------------------------------------------------------

    def handle(self, line: str) -> bool:
        """Run one input line; False when the session should end."""
        text = line.strip()
        if not text:
            return True
        self.reload_if_changed()
        word, _, rest = text.partition(" ")
        try:
            if word in (".exit", ".quit"):
                return False
            handler = self._handlers().get(word)
            unknown = mistyped(text) if handler is None else None
            if unknown is not None:  # not evaluated: JavaScript would only say it is not JavaScript
                raise ReplError(unknown)
            if handler is not None:
                handler(rest.strip())
            else:
                self.evaluate(text)
        except errors.JsprojError as exc:
            self.console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        return True

    def _handlers(self) -> dict[str, Callable[[str], None]]:
        return {
            "append": self.append,
            "view": self.view,
            "events": lambda rest: self.events(),
            ".load": lambda rest: self._load_command(rest),
            ".reload": lambda rest: self._load_command(str(self.folder)),
            ".reset": lambda rest: self.reset(),
            ".undo": lambda rest: self.undo(),
            ".list": lambda rest: self.list_projections(),
            ".status": lambda rest: self.status(),
            ".dead-letters": self.dead_letters,
            ".retry": self.retry,
            ".rebuild": self.rebuild,
            ".help": lambda rest: self.console.print(HELP, markup=False, highlight=False),
        }

    def _load_command(self, rest: str) -> None:
        if not rest:
            raise ReplError("usage: .load DIR")
        self.load(Path(shlex.split(rest)[0]))
        self.console.print(f"loaded {', '.join(self.names) or 'no projections'} from {self.folder}")

    def evaluate(self, code: str) -> None:
        assert self.projections is not None
        answer = self.projections.evaluate(code)
        self._print_logs()
        self.console.print(answer["value"], markup=False, highlight=False)

    def list_projections(self) -> None:
        table = Table(title=f"projections in {self.folder}", title_justify="left")
        for column in ("name", "kind", "lifecycle", "file", "handles"):
            table.add_column(column)
        for info in self.projections.infos if self.projections else []:
            handles = ", ".join(info.event_types) + (" + any" if info.any_event else "")
            table.add_row(info.name, info.kind, info.lifecycle, info.file or "", handles)
        self.console.print(table)

    def _print_logs(self) -> None:
        if self.projections is None:
            return
        for entry in self.projections.sandbox.drain_logs():
            where = entry.get("projection") or entry.get("file") or "projections"
            self.console.print(f"[dim]\\[{where}][/dim] {entry.get('message', '')}", highlight=False)

    @staticmethod
    def _message(rest: str) -> list[dict[str, Any]]:
        if not rest:
            raise ReplError('usage: append {"id": "quest-1", "type": "Quest", "data": {"$type": "QuestStarted"}}')
        try:
            value = json.loads(rest)
        except ValueError as exc:
            raise ReplError(f"the message is not JSON: {exc}") from None
        messages = value if isinstance(value, list) else [value]
        if not messages or not all(isinstance(m, dict) for m in messages):
            raise ReplError("append takes an append message (a JSON object) or a JSON list of them")
        return messages

    def _show_changes(self, changes: dict[str, dict[str, Any]]) -> None:
        if not changes:
            self.console.print("[dim]no projection changed[/dim]")
            return
        for name in sorted(changes):
            for doc_id, document in changes[name].items():
                shown = "deleted" if document is None else json.dumps(document, ensure_ascii=False)
                self.console.print(f"[bold]{name}[/bold] {doc_id}: ", end="")
                self.console.print(shown, markup=False, highlight=False)

    # -- the commands each session implements -------------------------------------

    def append(self, rest: str) -> None:
        raise NotImplementedError

    def view(self, rest: str) -> None:
        raise NotImplementedError

    def events(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def undo(self) -> None:
        raise NotImplementedError

    # -- operating a store's projections (jsproj.projections.operations) ---------------------------

    def status(self) -> None:
        raise ReplError(STORE_ONLY)

    def dead_letters(self, rest: str) -> None:
        raise ReplError(STORE_ONLY)

    def retry(self, rest: str) -> None:
        raise ReplError(STORE_ONLY)

    def rebuild(self, rest: str) -> None:
        raise ReplError(STORE_ONLY)

    def close(self) -> None:
        if self.projections is not None:
            self.projections.close()


class MemorySession(Session):
    """Events and documents in memory: nothing is stored anywhere."""

    def __init__(self, folder: Path, console: Console, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.appends: list[list[dict[str, Any]]] = []  # the records of each append
        self.documents: dict[str, dict[str, Any]] = {}
        super().__init__(folder, console, timeout=timeout)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for append in self.appends for record in append]

    def loaded(self) -> None:
        self._replay()

    def _replay(self) -> None:
        """The documents of every loaded projection, folded from the whole log again."""
        self.documents = {name: {} for name in self.names}
        for append in self.appends:
            self._apply(append)

    def _apply(self, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        assert self.projections is not None
        try:
            changes = apply_page(self.projections, json.dumps(records), self.documents)
        finally:
            self._print_logs()
        return {
            name: {**change.upserts, **dict.fromkeys(change.deletes)}
            for name, change in changes.items()
            if change.upserts or change.deletes
        }

    def append(self, rest: str) -> None:
        assert self.projections is not None
        messages = self._message(rest)
        for message in messages:  # event ids unique across appends, as a store makes them
            data = message.get("data")
            events = data if isinstance(data, list) else [data]
            for event, made in zip(events, event_ids(len(events)), strict=True):
                if isinstance(event, dict) and "$id" not in event:
                    event["$id"] = made
        records = self.projections.normalize(
            json.dumps(messages), now=now_iso(), position=len(self.records), streams=self._streams()
        )
        before = json.dumps(self.documents)
        try:
            changed = self._apply(records)
        except errors.JsprojError:
            self.documents = json.loads(before)  # all projections or none, like an inline append
            raise
        self.appends.append(records)
        last = records[-1]
        self.console.print(
            f"[dim]appended {len(records)} event{'s' if len(records) != 1 else ''}: "
            f"{last['streamId']} is at version {last['version']}, position {last['position']}[/dim]"
        )
        self._show_changes(changed)

    def _streams(self) -> dict[str, dict[str, Any]]:
        streams: dict[str, dict[str, Any]] = {}
        for record in self.records:
            deleted = record["event"]["$type"] == "$deleted"  # (its tombstone: docs/lifecycle.md#deleting-a-stream)
            streams[record["streamId"]] = {"type": record["streamType"], "version": record["version"],
                                           "deleted": deleted}  # fmt: skip
        return streams

    def view(self, rest: str) -> None:
        args = shlex.split(rest)
        if not 1 <= len(args) <= 2:
            raise ReplError("usage: view NAME [ID]")
        name = args[0]
        if name not in self.documents:
            raise errors.unknown_projection(
                f"there is no projection named {name!r} (loaded: {', '.join(self.names) or 'none'})", name, self.names
            )
        documents = self.documents[name]
        info = self.projections.info(name) if self.projections else None
        if len(args) == 2 or (info is not None and info.kind == "aggregate"):
            key = args[1] if len(args) == 2 else name
            if key not in documents and len(args) == 1:
                self.console.print(f"null [dim]({name} has seen no event yet)[/dim]")
                return
            if key not in documents:
                raise ReplError(f"{name} has no document {key!r}")
            self.console.print(json.dumps(documents[key], indent=2, ensure_ascii=False), markup=False, highlight=False)
            return
        self.console.print(documents_table(f"{name} ({counted(len(documents), 'document')})", documents))

    def events(self) -> None:
        count = len(self.records)
        table = Table(title=f"{count} event{'s' if count != 1 else ''}", title_justify="left")
        for column in ("position", "stream", "version", "type", "data"):
            table.add_column(column)
        for record in self.records[-100:]:
            data = {k: v for k, v in record["event"].items() if k not in ("$type", "$id")}
            table.add_row(str(record["position"]), record["streamId"], str(record["version"]),
                          record["event"]["$type"], json.dumps(data, ensure_ascii=False))  # fmt: skip
        self.console.print(table)

    def reset(self) -> None:
        self.appends = []
        self._replay()
        self.console.print("forgot every event")

    def undo(self) -> None:
        if not self.appends:
            raise ReplError("there is nothing to undo")
        undone = self.appends.pop()
        self._replay()
        self.console.print(f"took back the last append ({len(undone)} event{'s' if len(undone) != 1 else ''})")


class StoreSession(Session):
    """A real store: appends go to PostgreSQL, views are read from it; the daemon runs after each append.

    ``.load``/``.reload`` deploy the folder (changed projections are rebuilt).
    """

    def __init__(self, folder: Path, console: Console, dsn: str, schema: str) -> None:
        from jsproj.store.sync import EventStore

        self.dsn, self.schema = dsn, schema
        self.store = EventStore(dsn, schema=schema, max_size=2)
        self.store.migrate()
        super().__init__(folder, console)

    def loaded(self) -> None:
        from jsproj.projections.deploy import deploy

        report = deploy(self.store, self.projections.sources if self.projections else [])
        touched = report.added + report.changed + report.removed
        if touched:
            self.console.print(f"[dim]deployed to {self.schema}: {', '.join(touched)}[/dim]")
        self._catch_up()

    def _catch_up(self) -> None:
        from jsproj.follow.daemon import Daemon

        Daemon(self.dsn, schema=self.schema, poll_interval=0.05).run(until_caught_up=True)

    def append(self, rest: str) -> None:
        messages = self._message(rest)
        results = self.store.append_all(messages)
        self._catch_up()
        positions = [p for result in results for p in result.positions]
        last = results[-1]
        self.console.print(f"[dim]appended {len(positions)} event{'s' if len(positions) != 1 else ''}: "
                           f"{last.stream_id} is at version {last.version}, "
                           f"position {positions[-1]}[/dim]")  # fmt: skip
        self._show_changes(self._touched(positions))

    def _touched(self, positions: list[int]) -> dict[str, dict[str, Any]]:
        from jsproj.errors import UnknownDocumentError
        from jsproj.projections.views import fetch_view
        from jsproj.store.log import RECORDS_AT
        from jsproj.store.queries import value

        with self.store.connection() as conn:
            records = value(conn, RECORDS_AT, ([], positions))  # the events' records, no documents
        assert self.projections is not None
        routed = self.projections.route(records)
        touched: dict[str, dict[str, Any]] = {}
        for name, keys in routed.items():
            if self.projections.info(name).lifecycle == "live":
                continue
            touched[name] = {}
            for key in keys:
                try:
                    touched[name][key] = fetch_view(self.store, name, key)
                except UnknownDocumentError:
                    touched[name][key] = None
        return touched

    def view(self, rest: str) -> None:
        from jsproj.projections.live import aggregate
        from jsproj.projections.views import fetch_view

        args = shlex.split(rest)
        if not 1 <= len(args) <= 2:
            raise ReplError("usage: view NAME [ID]")
        assert self.projections is not None
        info = self.projections.info(args[0])
        if info.lifecycle == "live":
            if len(args) != 2:
                raise ReplError(f"{info.name} is live: name the stream to fold, view {info.name} STREAM")
            document = aggregate(self.store, self.projections, info.name, args[1])
            self.console.print(json.dumps(document, indent=2, ensure_ascii=False), markup=False, highlight=False)
            return
        if len(args) == 2 or info.kind == "aggregate":
            document = fetch_view(self.store, info.name, args[1] if len(args) == 2 else None)
            self.console.print(json.dumps(document, indent=2, ensure_ascii=False), markup=False, highlight=False)
            return
        documents = fetch_view(self.store, info.name)
        self.console.print(documents_table(f"{info.name} ({counted(len(documents), 'document')})", documents))

    def events(self) -> None:
        found = self.store.read_all(after=0, limit=100_000)
        table = Table(title=f"{counted(len(found), 'event')} (the last 100 shown)", title_justify="left")
        for column in ("position", "stream", "version", "type", "data"):
            table.add_column(column)
        for event in found[-100:]:
            table.add_row(str(event.position), event.stream_id, str(event.version), event.type,
                          json.dumps(event.data, ensure_ascii=False))  # fmt: skip
        self.console.print(table)

    def status(self) -> None:
        from jsproj.projections.status import projection_status
        from jsproj.tools.render import status_table

        self.console.print(status_table(projection_status(self.store)))

    def dead_letters(self, rest: str) -> None:
        from jsproj.projections.operations import list_dead_letters
        from jsproj.tools.render import dead_letters_table

        self.console.print(dead_letters_table(list_dead_letters(self.store, rest or None)))

    def retry(self, rest: str) -> None:
        from jsproj.projections.operations import retry

        if not rest:
            raise ReplError("usage: .retry NAME")
        done = retry(self.store, rest)
        self.console.print(f"{done.projection}: {'resumed; ' if done.resumed else ''}"
                           f"{done.applied or 0} of {counted(done.dead_letters, 'dead letter')} applied")  # fmt: skip
        self._catch_up()

    def rebuild(self, rest: str) -> None:
        from jsproj.projections.operations import rebuild

        if not rest:
            raise ReplError("usage: .rebuild NAME")
        done = rebuild(self.store, rest)
        self.console.print(f"rebuilt {done.projection} from {done.events} events")

    def reset(self) -> None:
        raise ReplError("a store's events are never removed: .reset works in memory (jsproj repl without --dsn)")

    def undo(self) -> None:
        raise ReplError("a store's events are never removed: .undo works in memory (jsproj repl without --dsn)")

    def close(self) -> None:
        super().close()
        self.store.close()
