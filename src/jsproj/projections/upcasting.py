"""Events as projections see them: a stream's stored events beside what the upcasters make of them.

Upcasters and renames (docs/dsl.md#upcasters) run in the engine before any
projection sees an event; the stored log never changes. ``jsproj stream
--upcast`` shows both: each stored event, and the event the deployed
upcasters (or a folder's) hand projections -- or the UpcastError they fail
with. Every event goes through them here, whether or not a projection
subscribes to its type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.store.recorded import RecordedEvent, Stream, iso
from jsproj.store.sync import EventStore


@dataclass(frozen=True)
class Upcast:
    """One stored event and what projections see of it: ``seen`` (the event), or ``error``."""

    stored: RecordedEvent
    seen: dict[str, Any] | None
    error: errors.JsprojError | None = None

    def to_dict(self) -> dict[str, Any]:
        shown = self.stored.to_dict()
        if self.error is not None:
            return shown | {"upcastError": self.error.to_dict()}
        return shown | {"upcast": self.seen}


def record_of(event: RecordedEvent) -> dict[str, Any]:
    """A stored event as the engine's event record."""
    return {
        "position": event.position,
        "streamId": event.stream_id,
        "streamType": event.stream_type,
        "version": event.version,
        "timestamp": iso(event.timestamp),
        "metadata": event.metadata,
        "event": event.event,
    }


def upcast_stream(
    store: EventStore,
    projections: Projections,
    stream_id: str,
    from_version: int | None = None,
    to_version: int | None = None,
    *,
    include_archived: bool = False,
) -> tuple[Stream, list[Upcast]]:
    """The stream (as :meth:`EventStore.fetch_stream` gives it) and each of its events as ``projections``'
    upcasters make it."""
    found = store.fetch_stream(stream_id, from_version, to_version, include_archived=include_archived)
    answers = projections.upcast([record_of(e) for e in found.events]) if found.events else []
    return found, [
        Upcast(stored, answer.get("event"), errors.from_info(answer["error"]) if "error" in answer else None)
        for stored, answer in zip(found.events, answers, strict=True)
    ]
