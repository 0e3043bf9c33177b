"""Live aggregation: fold one stream's events on demand, storing nothing."""

from __future__ import annotations

from typing import Any

from jsproj import errors
from jsproj.runtime.projections import Projections
from jsproj.store import EventStore


def aggregate(
    store: EventStore, projections: Projections, name: str, stream_id: str, at_version: int | None = None
) -> Any | None:
    """The document projection ``name`` makes of the stream's events up to ``at_version``.

    ``name`` must be a stream projection of the stream's type. Returns None
    when the fold deletes the document or there are no events to fold.
    One query fetches the events as record lines, one sandbox call folds them.
    """
    info = projections.info(name)
    if info.kind != "stream":
        raise errors.ProjectionError(
            f"live aggregation folds one stream, and {name} is a{'n' if info.kind[0] in 'ae' else ''} {info.kind} "
            "projection: use a projectStream projection",
            projection=name,
        )
    if at_version is not None and at_version < 0:
        raise errors.InputError(f"--at-version must be >= 0, not {at_version}")
    stream, lines = store.stream_lines(stream_id, at_version)
    if stream.type != info.stream_type:
        raise errors.ProjectionError(
            f"stream {stream_id!r} is a {stream.type} stream; projection {name} folds {info.stream_type} streams",
            projection=name,
        )
    if not lines:
        return None
    result = projections.apply_lines(lines, {name: {stream_id: None}}, only=[name])
    if result.errors:
        raise result.errors[0]
    change = result.changes.get(name)
    return change.upserts.get(stream_id) if change else None
