"""Projection files loaded into a sandbox, and the batch calls hosts make.

A host routes a batch of event records (which documents do they touch?),
loads those documents, applies the batch (one sandbox call) and writes the
changes. :class:`Projections` is that interface for Python hosts.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsproj import errors
from jsproj.engine.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, Sandbox

#: An event record as the engine takes it: position, streamId, streamType,
#: version, timestamp, metadata and event (``{"$type", "$id", ...}``).
EventRecord = dict[str, Any]
#: Events for a batch: records, or the JSON text of a list of records.
Events = Sequence[EventRecord] | str


@dataclass(frozen=True)
class ProjectionInfo:
    """What a loaded projection is: its name, kind, lifecycle, subscriptions and indexed fields."""

    name: str
    kind: str  # "stream", "event", "aggregate" or "view"
    lifecycle: str  # "inline", "async" or "live"
    file: str | None
    stream_type: str | None
    event_types: tuple[str, ...]
    any_event: bool
    indexes: tuple[str, ...] = ()  # fields declared with .index()
    version: int = 1  # declared with .version(n) (docs/deploy.md#versions)
    #: the old names of the types it handles (``renameEvent``): events stored under them reach it too
    renamed_from: tuple[str, ...] = ()
    #: the upcasters and renames its input goes through (docs/dsl.md#upcasters): a change of one is a change of it
    upcast_by: tuple[Upcasting, ...] = ()

    @classmethod
    def from_engine(cls, info: Mapping[str, Any]) -> ProjectionInfo:
        return cls(
            name=info["name"],
            kind=info["kind"],
            lifecycle=info["lifecycle"],
            file=info.get("file"),
            stream_type=info.get("streamType"),
            event_types=tuple(info.get("eventTypes") or ()),
            any_event=bool(info.get("anyEvent")),
            indexes=tuple(info.get("indexes") or ()),
            version=int(info.get("version") or 1),
            renamed_from=tuple(info.get("renamedFrom") or ()),
            upcast_by=tuple(Upcasting.from_engine(u) for u in info.get("upcasters") or ()),
        )

    @property
    def routed_types(self) -> tuple[str, ...]:
        """The stored event types it is routed by: those it handles and their old names."""
        return (*self.event_types, *(t for t in self.renamed_from if t not in self.event_types))


@dataclass(frozen=True)
class Upcasting:
    """One upcaster (``upcast(event_type).from(from_version)``) or rename (``renameEvent(renamed).to(event_type)``)
    declared in ``file``."""

    event_type: str
    from_version: int | None = None  # an upcaster's: it makes version from_version + 1
    renamed: str | None = None  # a rename's old name
    file: str | None = None

    @classmethod
    def from_engine(cls, info: Mapping[str, Any]) -> Upcasting:
        if "renamed" in info:
            return cls(event_type=info["to"], renamed=info["renamed"], file=info.get("file"))
        return cls(event_type=info["eventType"], from_version=int(info["from"]), file=info.get("file"))

    def to_dict(self) -> dict[str, Any]:
        """As the engine describes it: ``{"eventType", "from", "to", "file"}``; a rename ``{"from", "to", "file"}``."""
        if self.renamed is not None:
            return {"from": self.renamed, "to": self.event_type, "file": self.file}
        return {"eventType": self.event_type, "from": self.from_version, "to": (self.from_version or 0) + 1,
                "file": self.file}  # fmt: skip

    def __str__(self) -> str:
        if self.renamed is not None:
            return f"{self.renamed} renamed to {self.event_type}"
        return f"{self.event_type} from version {self.from_version}"


@dataclass
class Change:
    """One projection's changed documents after a batch."""

    kind: str
    upserts: dict[str, Any] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)


@dataclass
class BatchResult:
    """What applying a batch gave: changes per projection, and the handler errors.

    A projection that failed has no entry in ``changes`` and one error --
    unless the call gave it a policy (:class:`CallOptions`): then it has its
    changes, and an error per event it skipped or stopped on.
    """

    changes: dict[str, Change]
    errors: list[errors.JsprojError]
    #: the changes as ``pge_write_changes`` takes them (JSON text), when the call asked for text
    changes_text: str | None = None


@dataclass(frozen=True)
class CallOptions:
    """What an engine call may be asked besides its events (js/lib/policies.js).

    ``on_error``: per projection, ``"skip"`` a failing event (its documents
    end as if it was never delivered) or ``"stop"`` there (the events before
    it count); ``exclude``: positions not delivered to a projection;
    ``partitions``: per stream or view projection, ``(count, [indexes])`` of
    the partitions of its document keys the call handles; ``cache``:
    projections whose documents the sandbox keeps across calls (js/lib/cache.js:
    only for their one writer, which drops them with
    :meth:`Projections.cache_drop` when they may differ from the database's);
    ``changes_text``: the changes come back as JSON text
    (:attr:`BatchResult.changes_text`), for a host that only writes them;
    ``emits``: projections whose handlers may write events (js/lib/emits.js),
    which come with their changes for the host to append.
    """

    only: Sequence[str] | None = None
    on_error: Mapping[str, str] = field(default_factory=dict)
    exclude: Mapping[str, Sequence[int]] = field(default_factory=dict)
    partitions: Mapping[str, tuple[int, Sequence[int]]] = field(default_factory=dict)
    cache: Sequence[str] = ()
    changes_text: bool = False
    emits: Sequence[str] = ()

    def to_engine(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.only is not None:
            options["projections"] = list(self.only)
        if self.on_error:
            options["onError"] = dict(self.on_error)
        if self.exclude:
            options["exclude"] = {name: list(positions) for name, positions in self.exclude.items()}
        if self.partitions:
            options["partitions"] = {n: {"count": c, "take": list(t)} for n, (c, t) in self.partitions.items()}
        if self.cache:
            options["cache"] = list(self.cache)
        if self.changes_text:
            options["changesText"] = True
        if self.emits:
            options["emits"] = list(self.emits)
        return options


@dataclass(frozen=True)
class Folded:
    """What folding a page into a build gave: the events read, and the errors of projections with a policy."""

    events: int
    errors: list[errors.JsprojError]
    #: what the projections allowed to emit emitted, ``{name: {"emits": [...]}}`` as JSON text (pge_append_emitted)
    emitted: str | None = None


def _batch_result(answer: Mapping[str, Any]) -> BatchResult:
    """An apply answer of the engine as a :class:`BatchResult`."""
    found = [errors.from_info(e) for e in answer["errors"]]
    if isinstance(answer["changes"], str):
        return BatchResult(changes={}, errors=found, changes_text=answer["changes"])
    changes = {
        name: Change(kind=c["kind"], upserts=c["upserts"], deletes=c["deletes"])
        for name, c in answer["changes"].items()
    }
    return BatchResult(changes=changes, errors=found)


def _upcasting(described: Mapping[str, Any]) -> list[Upcasting]:
    """The engine's description of the upcasters (by type and version), then of the renames (by old name)."""
    upcasters = [Upcasting(u["eventType"], from_version=int(u["from"]), file=u.get("file"))
                 for u in described["upcasters"]]  # fmt: skip
    return [*upcasters, *(Upcasting(r["to"], renamed=r["from"], file=r.get("file")) for r in described["renames"])]


def read_folder(folder: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The ``*.js`` files of a folder as sources (``[{"file", "source"}]``), sorted by name."""
    path = Path(folder)
    if not path.is_dir():
        raise errors.ProjectionError(f"no such projections folder: {path}", file=str(path))
    files = sorted(p for p in path.iterdir() if p.suffix == ".js" and p.is_file())
    if not files:
        raise errors.ProjectionError(f"no projection files (*.js) in {path}", file=str(path))
    sources = []
    for file in files:
        try:
            sources.append({"file": file.name, "source": file.read_text("utf-8")})
        except UnicodeDecodeError as exc:
            raise errors.ProjectionSyntaxError(f"{file.name}: not UTF-8 text ({exc.reason})", file=file.name) from exc
    return sources


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _events_json(events: Events) -> str:
    return events if isinstance(events, str) else _json(events)


class Projections:
    """Projection sources loaded into a :class:`~jsproj.engine.sandbox.Sandbox`.

    Raises :class:`~jsproj.errors.ProjectionError` subclasses for files that do
    not parse or define something invalid.
    """

    def __init__(
        self,
        sources: Sequence[Mapping[str, str]],
        *,
        sandbox: Sandbox | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        context: str | None = None,
    ) -> None:
        self.sandbox = sandbox or Sandbox(timeout=timeout, memory_limit=memory_limit, context=context)
        self._owns_sandbox = sandbox is None
        self.sources = [{"file": str(s["file"]), "source": str(s["source"])} for s in sources]
        # Threads may share one Projections (an EventStore's appends): batch ids are
        # unique across them, and each thread remembers the batch it routed last.
        self._batch_ids = itertools.count(1)
        self._local = threading.local()
        try:
            described = self.sandbox.load(self.sources)
        except BaseException:
            self.close()
            raise
        self.infos = [ProjectionInfo.from_engine(info) for info in described]

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], **options: Any) -> Projections:
        """Load every ``*.js`` file of ``folder``."""
        return cls(read_folder(folder), **options)

    @property
    def names(self) -> list[str]:
        return [info.name for info in self.infos]

    def info(self, name: str) -> ProjectionInfo:
        for info in self.infos:
            if info.name == name:
                return info
        raise errors.unknown_projection(f"there is no projection named {name!r}", name, self.names)

    @property
    def upcasting(self) -> list[Upcasting]:
        """Every upcaster and rename the files declare (docs/dsl.md#upcasters)."""
        return _upcasting(self.sandbox.call("upcasters", ""))

    def upcast(self, events: Events) -> list[dict[str, Any]]:
        """Each record's event as projections see it, whether or not one subscribes to it: ``{"event": {...}}``,
        or ``{"error": {...}}`` (an UpcastError's)."""
        return list(self.sandbox.call("upcast", f'{{"events":{_events_json(events)}}}'))

    def evaluate(self, code: str) -> dict[str, Any]:
        """Run REPL input in the sandbox with the DSL: ``{"value": text, "projections": [descriptions]}``.

        Projections it defines go to a scratch projector of the sandbox's own;
        the loaded projections are not touched.
        """
        answer: dict[str, Any] = self.sandbox.call("evaluate", json.dumps({"code": code}))
        return answer

    def normalize(
        self,
        text: str,
        *,
        now: str | None = None,
        position: int = 0,
        streams: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[EventRecord]:
        """Check an events file (JSON array or JSON Lines of append messages) and return its event records.

        Stream ids and event ``$id`` s it lacks are assigned deterministically.
        """
        options: dict[str, Any] = {"position": position}
        if now is not None:
            options["now"] = now
        if streams is not None:
            options["streams"] = dict(streams)
        records: list[dict[str, Any]] = self.sandbox.call("normalize", json.dumps({"text": text, "options": options}))
        return records

    def route(self, events: Events, *, only: Iterable[str] | None = None) -> dict[str, list[str]]:
        """The documents a batch touches, per projection (event projections excluded).

        The sandbox keeps the parsed events, so an :meth:`apply` of the same
        events (the same ``str``) right after does not send them again.
        """
        options = {} if only is None else {"projections": list(only)}
        events_json = _events_json(events)
        batch = next(self._batch_ids)
        self._local.routed = None
        keys: dict[str, list[str]] = self.sandbox.call(
            "route", f'{{"events":{events_json},"batch":{batch},"options":{_json(options)}}}'
        )
        self._local.routed = (events_json, batch, self.sandbox.restarts)
        return keys

    def apply(
        self,
        events: Events,
        documents: Mapping[str, Mapping[str, Any]],
        *,
        only: Iterable[str] | None = None,
    ) -> BatchResult:
        """Apply a batch to the documents :meth:`route` named (``None`` for absent ones).

        A time or memory limit stops the whole call; when several projections
        ran, each is retried alone to name the one at fault.
        """
        names = list(only) if only is not None else None
        events_json = _events_json(events)
        try:
            answer = self._apply(events_json, documents, names)
        except errors.SandboxLimitError as exc:
            raise self._culprit(exc, events_json, documents, names) from None
        return _batch_result(answer)

    def apply_lines(
        self, lines: str, documents: Mapping[str, Mapping[str, Any]], *, only: Iterable[str] | None = None
    ) -> BatchResult:
        """Like :meth:`apply`, for events as record lines (``js/lib/records.js``: what PostgreSQL
        writes three times faster than JSON records)."""
        return self.apply_page(lines, documents, CallOptions(only=None if only is None else list(only)))

    def route_or_apply(self, lines: str, options: CallOptions) -> dict[str, list[str]] | BatchResult:
        """Route a page of record lines with a call's options -- and in the same call apply it when
        the sandbox has every document it needs (kept: ``options.cache``, or none needed): the keys
        to load for :meth:`apply_page` (which then does not send the page again), or what the page gave."""
        batch = next(self._batch_ids)
        self._local.routed = None
        request = {"lines": lines, "batch": batch, "options": options.to_engine(), "thenApply": True}
        answer = self.sandbox.call("route", _json(request))
        if "applied" in answer:
            return _batch_result(answer["applied"])
        self._local.routed = (lines, batch, self.sandbox.restarts)
        keys: dict[str, list[str]] = answer["keys"]
        return keys

    def apply_page(
        self, lines: str, documents: Mapping[str, Mapping[str, Any]] | str, options: CallOptions
    ) -> BatchResult:
        """Apply a page of record lines with a call's options (policies, exclusions, partitions).

        ``documents`` may be given as JSON text (as the database wrote it: not parsed here at all).
        """
        engine_options = _json(options.to_engine())
        documents = documents if isinstance(documents, str) else _json(documents)
        routed, self._local.routed = getattr(self._local, "routed", None), None
        if routed is not None and routed[0] is lines and routed[2] == self.sandbox.restarts:
            try:
                return _batch_result(
                    self.sandbox.call(
                        "apply", f'{{"batch":{routed[1]},"documents":{documents},"options":{engine_options}}}'
                    )
                )
            except errors.StaleBatchError:
                if options.cache:
                    raise  # its cache went with the worker: route again
                # the worker was replaced since route_or_apply(): send the lines
        payload = f'{{"lines":{json.dumps(lines)},"documents":{documents},"options":{engine_options}}}'
        return _batch_result(self.sandbox.call("apply", payload))

    def _apply(self, events_json: str, documents: Mapping[str, Any], names: list[str] | None) -> dict[str, Any]:
        options = _json({} if names is None else {"projections": names})
        routed, self._local.routed = getattr(self._local, "routed", None), None
        if routed is not None and routed[0] is events_json and routed[2] == self.sandbox.restarts:
            try:
                answer: dict[str, Any] = self.sandbox.call(
                    "apply", f'{{"batch":{routed[1]},"documents":{_json(documents)},"options":{options}}}'
                )
                return answer
            except errors.StaleBatchError:
                pass  # the worker was replaced since route(): send the events
        payload = f'{{"events":{events_json},"documents":{_json(documents)},"options":{options}}}'
        sent: dict[str, Any] = self.sandbox.call("apply", payload)
        return sent

    def _culprit(
        self,
        exc: errors.SandboxLimitError,
        events_json: str,
        documents: Mapping[str, Any],
        names: list[str] | None,
    ) -> errors.SandboxLimitError:
        """The limit error with its projection named, found by running each projection alone."""
        candidates = names if names is not None else self.names
        if exc.info.get("projection") or len(candidates) < 2:
            if not exc.info.get("projection") and len(candidates) == 1:
                message = exc.message.replace("projection code", f"projection {candidates[0]}", 1)
                return exc.replace(message, projection=candidates[0])
            return exc
        for name in candidates:
            try:
                self._apply(events_json, documents, [name])
            except errors.SandboxLimitError as alone:
                return self._culprit(alone, events_json, documents, [name])
        return exc

    def cache_drop(self, names: Iterable[str] | None = None) -> None:
        """Forget the documents the sandbox keeps for ``names`` (None: for every projection)."""
        self.sandbox.call("cacheDrop", _json({"projections": None if names is None else list(names)}))

    # -- builds: documents kept in the sandbox across pages --------------------

    def fold_start(self, names: Iterable[str], on_error: Mapping[str, str], emits: Sequence[str] = ()) -> None:
        """Start building the named projections from scratch, in the sandbox's memory.

        ``on_error`` gives projections a policy (``"skip"`` or ``"stop"``, as :class:`CallOptions`): their
        errors are then reported by :meth:`fold_lines` instead of raised, and one that stops leaves the
        build. ``emits``: those whose handlers may write events (:attr:`Folded.emitted`).
        """
        self._fold_restarts = self.sandbox.restarts
        self.sandbox.call("foldStart", _json({"projections": [*names], "onError": on_error, "emits": [*emits]}))

    def fold_lines(self, text: str) -> Folded:
        """Fold a page given as record lines (see js/lib/records.js) into the build."""
        self._check_fold()
        answer = self.sandbox.call("foldLines", text)
        return Folded(int(answer["events"]), [errors.from_info(e) for e in answer["errors"]], answer.get("emitted"))

    def fold_rows(self, name: str, limit: int) -> tuple[str, int, bool]:
        """The next ``limit`` documents the build folded for ``name``, as COPY text rows ``id<TAB>data``:
        (text, rows, whether more follow). Call until no more follow."""
        self._check_fold()
        answer = self.sandbox.call("foldRows", _json({"projection": name, "limit": limit}))
        return str(answer["text"]), int(answer["rows"]), bool(answer["more"])

    def fold_end(self) -> None:
        """End the build: the sandbox forgets the documents it folded."""
        self.sandbox.call("foldEnd", "")

    def _check_fold(self) -> None:
        if self.sandbox.restarts != getattr(self, "_fold_restarts", self.sandbox.restarts):
            raise errors.SandboxError(
                "the sandbox was restarted during a build: its documents are gone; start it again"
            )

    def close(self) -> None:
        """Stop the sandbox if this object made it."""
        if self._owns_sandbox:
            self.sandbox.close()

    def __enter__(self) -> Projections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
