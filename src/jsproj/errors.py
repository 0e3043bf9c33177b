"""The exceptions jsproj raises: one small hierarchy under :class:`JsprojError`.

Errors that come from the JavaScript engine carry the same fields in every
host (the ``kind`` names the class); :func:`from_info` rebuilds them here.
"""

from __future__ import annotations

from typing import Any


class JsprojError(Exception):
    """Base class of every jsproj error. ``str()`` is one line; ``info`` has the details."""

    kind = "JsprojError"

    def __init__(self, message: str, **info: Any) -> None:
        super().__init__(message.split("\n", 1)[0])
        self.message = message
        self.info: dict[str, Any] = {"kind": self.kind, "message": message, **info}

    def __getattr__(self, name: str) -> Any:
        info = self.__dict__.get("info", {})
        if name in info:
            return info[name]
        raise AttributeError(name)

    def replace(self, message: str | None = None, **fields: Any) -> JsprojError:
        """A copy of this error with another message or more fields."""
        info = {k: v for k, v in self.info.items() if k not in ("kind", "message")}
        return type(self)(message or self.message, **{**info, **fields})

    def to_dict(self, *, stack: bool = True) -> dict[str, Any]:
        """The error as the engine reports it (``kind``, ``message`` and its fields)."""
        return {k: v for k, v in self.info.items() if stack or k != "stack"}


class ProjectionError(JsprojError):
    """Something is wrong with projection code."""

    kind = "ProjectionError"


class ProjectionSyntaxError(ProjectionError):
    """A projection file does not parse; ``file`` and ``line`` say where."""

    kind = "ProjectionSyntaxError"


class ProjectionDefinitionError(ProjectionError):
    """A projection file runs but defines something invalid (name, handler, require, ...)."""

    kind = "ProjectionDefinitionError"


class ProjectionHandlerError(ProjectionError):
    """Projection code failed on an event (a handler, transform or identifiedBy threw, or made a document
    that cannot be stored): ``projection``, ``event_id``, ``event_type``, ``stream_id``, ``position``, ``stack``."""

    kind = "ProjectionHandlerError"

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

    kind = "DocumentError"


class UnknownProjectionError(JsprojError):
    """A projection name that is not defined."""

    kind = "UnknownProjectionError"


class SandboxLimitError(ProjectionError):
    """A call into the sandbox was stopped by a limit; ``projection`` names the culprit when known."""

    kind = "SandboxLimitError"


class SandboxTimeoutError(SandboxLimitError):
    """Projection code ran past the time limit of one call."""

    kind = "SandboxTimeoutError"


class SandboxMemoryError(SandboxLimitError):
    """Projection code went past the memory limit."""

    kind = "SandboxMemoryError"


class SandboxError(JsprojError):
    """The sandbox itself failed (the V8 worker could not start, or died for another reason)."""

    kind = "SandboxError"


class InputError(JsprojError):
    """Bad input: events files, append messages, events."""

    kind = "InputError"


class EventsFileError(InputError):
    """An events file that is not JSON, JSON Lines or a list of messages; ``line`` says where."""

    kind = "EventsFileError"


class InvalidEventError(InputError):
    """An append message or event that breaks the format (missing ``$type``, bad id, ...)."""

    kind = "InvalidEventError"


class ConcurrencyError(JsprojError):
    """A stream is not at the expected version: ``stream_id``, ``expected``, ``actual``."""

    kind = "ConcurrencyError"

    @property
    def stream_id(self) -> str | None:
        return self.info.get("streamId")


class EngineError(JsprojError):
    """A host used the engine wrongly (a bug in jsproj, not in projections)."""

    kind = "EngineError"


class StaleBatchError(EngineError):
    """``apply`` named a routed batch the sandbox no longer holds (its worker was replaced)."""

    kind = "StaleBatchError"


class InternalError(JsprojError):
    """An unexpected failure inside the engine."""

    kind = "InternalError"


class StackOverflowError(ProjectionError):
    """Projection code recursed too deeply."""

    kind = "StackOverflowError"


# -- the event store (store.py) --------------------------------------------------


class StoreError(JsprojError):
    """The store cannot do what was asked (unreachable, not migrated, ...)."""

    kind = "StoreError"


class StoreUnavailableError(StoreError):
    """PostgreSQL cannot be reached."""

    kind = "StoreUnavailableError"


class SchemaMissingError(StoreError):
    """The store's tables or functions are missing: run ``jsproj migrate``."""

    kind = "SchemaMissingError"


class UnreadableDocumentError(StoreError):
    """Stored JSON nested deeper than Python can read (written before jsproj's depth limit, or by SQL)."""

    kind = "UnreadableDocumentError"


class UnknownStreamError(StoreError):
    """No stream has that id."""

    kind = "UnknownStreamError"


class PythonEngineRequiredError(StoreError):
    """An append bypassed the Python engine while it keeps inline projections."""

    kind = "PythonEngineRequiredError"


class UnknownPositionError(StoreError):
    """``read_all(after=...)`` was given a position that is not an event's."""

    kind = "UnknownPositionError"


# -- the async daemon (daemon.py) ------------------------------------------------


class ProgressConflictError(JsprojError):
    """A projection's progress moved under the daemon (a redeploy reset it): the page was not applied."""

    kind = "ProgressConflictError"


class ProjectionStoppedError(JsprojError):
    """An async projection stopped on an event (policy 'stop'); ``jsproj retry`` resumes it."""

    kind = "ProjectionStoppedError"


# -- waiting for projections (status.py) -----------------------------------------


class WaitTimeoutError(JsprojError):
    """Async projections did not catch up before the deadline; ``lagging`` names them."""

    kind = "WaitTimeoutError"


# -- reading views (views.py) ----------------------------------------------------


class UnknownDocumentError(JsprojError):
    """A projection has no document with that id."""

    kind = "UnknownDocumentError"


# -- SQL identifiers (identifiers.py) --------------------------------------------


class InvalidNameError(InputError):
    """A schema or projection name that is not a safe SQL identifier."""

    kind = "InvalidNameError"


# -- migrations (migrate.py) -----------------------------------------------------


class MigrationError(JsprojError):
    """The schema cannot be brought up to date (a changed or unknown migration)."""

    kind = "MigrationError"


# -- the PostgreSQL server (server.py) -------------------------------------------


class ServerError(JsprojError):
    """The PostgreSQL server could not be found, initialised, started or stopped."""

    kind = "ServerError"


# -- projection specs (specs.py) -------------------------------------------------


class SpecFileError(InputError):
    """A spec file that is not valid JSON or not in the spec format."""

    kind = "SpecFileError"


# -- the REPL (repl.py) ----------------------------------------------------------


class ReplError(InputError):
    """A REPL command used the wrong way."""

    kind = "ReplError"


def _classes(base: type[JsprojError]) -> dict[str, type[JsprojError]]:
    found = {base.kind: base}
    for sub in base.__subclasses__():
        found.update(_classes(sub))
    return found


def from_info(info: dict[str, Any]) -> JsprojError:
    """The exception for an error description from the engine (``{"kind", "message", ...}``)."""
    fields = dict(info)
    kind = fields.pop("kind", "InternalError")
    message = fields.pop("message", kind)
    cls = _classes(JsprojError).get(kind, InternalError)
    return cls(message, **fields)
