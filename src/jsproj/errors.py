"""The exceptions jsproj raises: one small hierarchy under :class:`JsprojError`.

The kinds, their parents and their SQLSTATEs are one table, ``js/errors.json``,
which the Node client builds its classes from too: each class here takes its
``sqlstates`` from it (tests/conformance/test_error_table.py checks classes and table agree).
Errors that come from the JavaScript engine carry the same fields in every
host (the ``kind`` names the class); :func:`from_info` rebuilds them here.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Self

from jsproj.engine.bundle import lib_dir

#: ``js/errors.json``: every kind's parent, doc and SQLSTATEs, and the rules for SQLSTATEs no kind lists.
_TABLE: dict[str, Any] = json.loads((lib_dir().parent / "errors.json").read_text("utf-8"))

#: Which kind each SQLSTATE of the table means.
_KIND_OF_STATE = {state: kind for kind, entry in _TABLE["kinds"].items() for state in entry["sqlstates"]}


class JsprojError(Exception):
    """Base class of every jsproj error. ``str()`` is one line; ``info`` has the details.

    ``kind`` is the class's name (what the engine reports in every host);
    ``sqlstates`` are the SQLSTATEs of jsproj's SQL (and of PostgreSQL) that
    mean this error, each with how its message reads (``{message}`` is
    PostgreSQL's), as the table ``js/errors.json`` lists them for the kind:
    :func:`for_sqlstate` looks them up.
    """

    kind: ClassVar[str] = "JsprojError"
    sqlstates: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = cls.__name__
        entry = _TABLE["kinds"].get(cls.kind)
        cls.sqlstates = MappingProxyType(dict(entry["sqlstates"])) if entry else MappingProxyType({})

    def __init__(self, message: str, **info: Any) -> None:
        super().__init__(message.split("\n", 1)[0])
        self.message = message
        self.info: dict[str, Any] = {"kind": self.kind, "message": message, **info}

    @property
    def projection(self) -> str | None:
        """The projection at fault, when known."""
        return self.info.get("projection")

    @property
    def position(self) -> int | None:
        """The global position of the event at fault, when known."""
        return self.info.get("position")

    @property
    def stack(self) -> str | None:
        """The JavaScript stack (projection frames only), when the error came from projection code."""
        return self.info.get("stack")

    @property
    def file(self) -> str | None:
        """The projection file at fault, when known."""
        return self.info.get("file")

    @property
    def line(self) -> int | None:
        """The line (of ``file``, or of an events file) at fault, when known."""
        return self.info.get("line")

    def replace(self, message: str | None = None, **fields: Any) -> Self:
        """A copy of this error with another message or more fields."""
        info = {k: v for k, v in self.info.items() if k not in ("kind", "message")}
        return type(self)(message or self.message, **{**info, **fields})

    def to_dict(self, *, stack: bool = True) -> dict[str, Any]:
        """The error as the engine reports it (``kind``, ``message`` and its fields)."""
        return {k: v for k, v in self.info.items() if stack or k != "stack"}


class ProjectionError(JsprojError):
    """Something is wrong with projection code."""


class ProjectionSyntaxError(ProjectionError):
    """A projection file does not parse; ``file`` and ``line`` say where."""


class ProjectionDefinitionError(ProjectionError):
    """A projection file runs but defines something invalid (name, handler, require, ...)."""


class ProjectionHandlerError(ProjectionError):
    """Projection code failed on an event (a handler, transform or identifiedBy threw, or made a document
    that cannot be stored): ``projection``, ``event_id``, ``event_type``, ``stream_id``, ``position``, ``stack``."""

    @property
    def event_id(self) -> str | None:
        return self.info.get("eventId")

    @property
    def event_type(self) -> str | None:
        return self.info.get("eventType")

    @property
    def stream_id(self) -> str | None:
        return self.info.get("streamId")


class DocumentError(ProjectionHandlerError):
    """A projection made a document the value rule refuses (docs/dsl.md): a BigInt, a cycle, nesting past
    512 levels, JSON text past 16 MiB, text PostgreSQL cannot store. ``document_id``, ``path`` and ``limit``
    say which and where."""

    @property
    def document_id(self) -> str | None:
        return self.info.get("documentId")

    @property
    def path(self) -> str | None:
        """Where in the document the value rule was broken."""
        return self.info.get("path")

    @property
    def limit(self) -> Any:
        """The limit that was passed, when one was."""
        return self.info.get("limit")


class UpcastError(ProjectionHandlerError):
    """An upcaster failed on an event (it threw, or returned what is not an event), or the event's $version is
    not a schema version; the event fails for every projection it was going to, as a handler's error does.
    ``upcaster`` names it (``"QuestStarted from version 1"``; None: the event's ``$version`` is at fault), with
    its ``file``; ``stored_type`` is the event's type in the log (``event_type``: as projections see it)."""

    @property
    def upcaster(self) -> str | None:
        return self.info.get("upcaster")

    @property
    def stored_type(self) -> str | None:
        return self.info.get("storedType")


class UnknownProjectionError(JsprojError):
    """A projection name that is not defined; ``suggestion`` is the known name it is closest to, if any."""

    @property
    def suggestion(self) -> str | None:
        return self.info.get("suggestion")


def closest_name(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` most likely meant: the same but for case, else the closest by
    :func:`difflib.get_close_matches` (case-insensitive); None when none is close."""
    by_lower: dict[str, str] = {}
    for one in known:
        by_lower.setdefault(one.lower(), one)
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return by_lower[close[0]] if close else None


def unknown_projection(message: str, name: str, known: Iterable[str]) -> UnknownProjectionError:
    """:class:`UnknownProjectionError` for ``name``: ``message`` and, when a known name is close, "did you mean"."""
    best = closest_name(name, known)
    if best is None:
        return UnknownProjectionError(message, projection=name)
    return UnknownProjectionError(f"{message} (did you mean {best!r}?)", projection=name, suggestion=best)


class SandboxLimitError(ProjectionError):
    """A call into the sandbox was stopped by a limit; ``projection`` names the culprit when known."""


class SandboxTimeoutError(SandboxLimitError):
    """Projection code ran past the time limit of one call."""


class SandboxMemoryError(SandboxLimitError):
    """Projection code went past the memory limit."""


class SandboxError(JsprojError):
    """The sandbox itself failed (the V8 worker could not start, or died for another reason)."""


class InputError(JsprojError):
    """Bad input: events files, append messages, events."""


class EventsFileError(InputError):
    """An events file that is not JSON, JSON Lines or a list of messages; ``line`` says where."""


class InvalidEventError(InputError):
    """An append message or event that breaks the format (missing ``$type``, bad id, ...)."""


class ConcurrencyError(JsprojError):
    """A stream is not at the expected version: ``stream_id``, ``expected``, ``actual``."""

    @property
    def stream_id(self) -> str | None:
        return self.info.get("streamId")

    @property
    def expected(self) -> int | None:
        """The version the append expected the stream at (0: new)."""
        return self.info.get("expected")

    @property
    def actual(self) -> int | None:
        """The stream's version when the append was refused."""
        return self.info.get("actual")


class EngineError(JsprojError):
    """A host used the engine wrongly (a bug in jsproj, not in projections)."""


class StaleBatchError(EngineError):
    """``apply`` named a routed batch the sandbox no longer holds (its worker was replaced)."""


class InternalError(JsprojError):
    """An unexpected failure inside the engine."""


class StackOverflowError(ProjectionError):
    """Projection code recursed too deeply."""


# -- the event store (store.py) --------------------------------------------------


class StoreError(JsprojError):
    """The store cannot do what was asked (unreachable, not migrated, ...)."""


class StoreUnavailableError(StoreError):
    """PostgreSQL cannot be reached."""


class SchemaMissingError(StoreError):
    """The store's tables or functions are missing: run ``jsproj migrate``."""


class UnreadableDocumentError(StoreError):
    """Stored JSON nested deeper than Python can read (written before jsproj's depth limit, or by SQL)."""


class UnknownStreamError(StoreError):
    """No stream has that id."""


class StreamArchivedError(StoreError):
    """The stream is archived: unarchive it to append to it or to read it without asking for archived streams."""


class StreamDeletedError(StoreError):
    """The stream was deleted (its last event is the $deleted tombstone): re-create it by appending with its version
    as expected_version."""


class PythonEngineRequiredError(StoreError):
    """An append bypassed the Python engine while it keeps inline projections."""


class EmitNotAllowedError(StoreError):
    """A projection wrote events (emit, linkTo) without the permission: only async projections deployed with
    --emit may (docs/from-kurrentdb.md#emit-and-linkto)."""


class UnlimitedLanguageError(StoreError):
    """The JavaScript language installed in the database cannot stop a call at jsproj's time limit: it was built
    without its execution timeout (deploy refuses it: docs/deploy.md#plv8-and-pljs)."""


class PartitioningError(StoreError):
    """The log cannot be partitioned, extended or have partitions detached as asked (docs/partitioning.md), or an
    append to a partitioned log runs in repeatable read or serializable."""


class UnknownPositionError(StoreError):
    """``read_all(after=...)`` was given a position that is not an event's."""


class LogFilterError(InputError):
    """A read of the log by filters that cannot be run: an unknown option, a bad time, too many types, a bad
    metadata value or after. ``option`` names the filter at fault (``types``, ``since``, ...)."""

    @property
    def option(self) -> str | None:
        return self.info.get("option")


# -- the async daemon (daemon.py) ------------------------------------------------


class ProjectionStoppedError(JsprojError):
    """An async projection stopped on an event (policy 'stop'); ``jsproj retry`` resumes it."""


# -- Python subscribers (subscriptions.py) ---------------------------------------


class SubscriptionStoppedError(JsprojError):
    """A subscriber's handler raised on an event (policy 'stop'): the subscription stopped before it, the
    error recorded (``jsproj status``); its next run calls the handler on that event again."""

    @property
    def subscription(self) -> str | None:
        """The subscription that stopped."""
        return self.info.get("subscription")


class SubscriberImportError(InputError):
    """``jsproj subscribers`` was given a target that does not import, or is not a subscriber."""


# -- waiting for projections (status.py) -----------------------------------------


class WaitTimeoutError(JsprojError):
    """Async projections did not catch up before the deadline; ``lagging`` names them."""

    @property
    def lagging(self) -> list[str]:
        """The projections that had not caught up."""
        return list(self.info.get("lagging", []))


# -- reading views (views.py) ----------------------------------------------------


class UnknownDocumentError(JsprojError):
    """A projection has no document with that id."""


class QueryError(InputError):
    """A query of a view that cannot be run: a bad ``where``, ``order_by`` or ``limit``, or ``find`` on an
    aggregate (one document: read it by id). ``field`` names the key at fault, when one is."""

    @property
    def field(self) -> str | None:
        return self.info.get("field")


class InvalidFieldError(QueryError):
    """A field name that is not a dotted path of names (``where`` keys, ``order_by``, declared indexes)."""


# -- SQL identifiers (identifiers.py) --------------------------------------------


class BatchTooLargeError(InputError):
    """A batch that appends to more streams than PostgreSQL's lock table holds locks for (each stream of a batch
    is locked until it commits): nothing was written; append it in smaller transactions."""


class InvalidNameError(InputError):
    """A schema or projection name that is not a safe SQL identifier."""


# -- deploying (deploy.py) -------------------------------------------------------


class PruneRequiredError(InputError):
    """A deploy whose set lacks deployed projections, without ``prune``: refused, nothing changed;
    ``removed`` names the projections it would remove (``jsproj deploy --prune`` removes them)."""

    @property
    def removed(self) -> list[str]:
        return list(self.info.get("removed", []))


# -- migrations (migrate.py) -----------------------------------------------------


class MigrationError(JsprojError):
    """The schema cannot be brought up to date (a changed or unknown migration)."""


# -- the PostgreSQL server (server.py) -------------------------------------------


class ServerError(JsprojError):
    """The PostgreSQL server could not be found, initialised, started or stopped."""


# -- projection specs (specs.py) -------------------------------------------------


class SpecFileError(InputError):
    """A spec file that is not valid JSON or not in the spec format."""


# -- the REPL (repl.py) ----------------------------------------------------------


class ReplError(InputError):
    """A REPL command used the wrong way."""


def _classes(base: type[JsprojError]) -> dict[str, type[JsprojError]]:
    found = {base.kind: base}
    for sub in base.__subclasses__():
        found.update(_classes(sub))
    return found


def for_sqlstate(state: str) -> type[JsprojError] | None:
    """The class the table lists a SQLSTATE for (``JP409``: :class:`ConcurrencyError`, ...), if any."""
    kind = _KIND_OF_STATE.get(state)
    return None if kind is None else _classes(JsprojError)[kind]


def rule_for_sqlstate(state: str) -> tuple[type[JsprojError], str]:
    """The class and message template the table gives a SQLSTATE: the kind listing it, else the rule of its
    class (its first two characters: ``08``, PostgreSQL unreachable), else the rule for any other state;
    ``""`` (an error without a SQLSTATE) has its own rule.

    The template's ``{message}`` is PostgreSQL's message, ``{code}`` the state.
    """
    cls = for_sqlstate(state)
    if cls is not None:
        return cls, cls.sqlstates[state]
    if not state:
        rule = _TABLE["noState"]
    else:
        rule = _TABLE["classes"].get(state[:2], _TABLE["otherState"])
    return _classes(JsprojError)[rule["kind"]], rule["message"]


def from_info(info: dict[str, Any]) -> JsprojError:
    """The exception for an error description from the engine (``{"kind", "message", ...}``)."""
    fields = dict(info)
    kind = fields.pop("kind", "InternalError")
    message = fields.pop("message", kind)
    cls = _classes(JsprojError).get(kind, InternalError)
    return cls(message, **fields)
