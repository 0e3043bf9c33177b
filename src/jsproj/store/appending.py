"""Appending, written once as steps (:mod:`jsproj.store.steps`) for the sync and the asyncio store.

Each message goes through the server-side ``pge_append(message jsonb)``, so
that any client (psql included) appends with the same checks. When the store
runs Python-engine inline projections, the append also returns the events as
records and the documents they reach, and the projections run here, in the
same transaction; a batch of messages runs them once per page of
:data:`INLINE_PAGE` events rather than once per message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from jsproj import errors
from jsproj.store.log import RECORDS_AT
from jsproj.store.python_engine import Loaded, PythonEngine, apply_steps
from jsproj.store.recorded import AppendResult
from jsproj.store.steps import Query, Steps, ask

INLINE_PAGE = 1000  # events per engine call when a batch of messages runs Python-engine inline projections
# JSON per pge_append of an array of messages: each batch is checked whole before any of it is written, so
# only a refusal in a later batch of a larger append_all leaves the earlier batches' positions unused.
BATCH_BYTES = 32 * 1024 * 1024
# The batches of a caller that follows the progress (jsproj append's bar): 1 MB of JSON, a few thousand events,
# appended in well under a second, so that the progress moves while a large file goes in (one transaction still).
PROGRESS_BATCH_BYTES = 1024 * 1024

Message = Mapping[str, Any]


def message_of(
    message: Message | None,
    stream_id: str | None,
    type_: str | None,
    events: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None,
    expected_version: int | None,
    metadata: Mapping[str, Any] | None,
) -> Message:
    """The append message: ``message`` itself, or one made of its fields given as keywords."""
    fields = {
        "id": stream_id,
        "type": type_,
        "data": events,
        "expected_version": expected_version,
        "metadata": metadata,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    if message is not None:
        if given:
            raise TypeError("pass a message or its fields (stream_id=, events=, ...), not both")
        return message
    if events is None:
        raise TypeError("append() needs a message or events=")
    return {k: list(v) if k == "data" and not isinstance(v, Mapping | str | int) else v for k, v in given.items()}


def _text(message: Message, where: str) -> str:
    """The message as JSON text, or the error for what JSON cannot hold (NaN, a cycle, too deep, ...)."""
    try:
        return json.dumps(message, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError) as exc:
        problem = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        prefix = f"{where}: " if where else ""
        raise errors.InvalidEventError(f"{prefix}the message is not JSON: {problem}") from None


def _result(row: Mapping[str, Any]) -> AppendResult:
    return AppendResult(row["streamId"], row["version"], row["positions"])


def _named(exc: errors.JsprojError, where: str) -> errors.JsprojError:
    return exc.replace(f"{where}: {exc.message}") if where else exc


def inline_steps(engine: PythonEngine, *, reload: bool = False) -> Steps[bool]:
    """Whether the store must run Python-engine inline projections (loading them on first use, or ``reload``)."""
    loaded = engine.loaded()
    if loaded.generation is None or reload:
        loaded = yield from engine.refresh_steps()
    return bool(loaded.names)


def append_steps(engine: PythonEngine, message: Message, where: str = "") -> Steps[AppendResult]:
    """Append one message; with Python-engine inline projections, the connection is in a transaction."""
    text = _text(message, where)
    loaded = engine.loaded()
    if not loaded.names:
        (row,) = yield from ask(Query("select pge_append(%s::jsonb)", (text,)), where)
        return _result(row)
    query = Query("select * from pge_append_records(%s::jsonb)", (text,))
    row, records, generation, documents = yield from ask(query, where)
    yield from _apply(engine, loaded, generation, records, documents, where)
    return _result(row)


def _apply(
    engine: PythonEngine, loaded: Loaded, generation: int, records: str, documents: Mapping[str, Any], where: str
) -> Steps[None]:
    if generation != loaded.generation:
        loaded = yield from engine.refresh_steps()
    if not loaded.names:
        return
    assert loaded.projections is not None, "names come with their projections"
    try:
        yield from apply_steps(loaded.projections, records, loaded.names, documents)
    except errors.JsprojError as exc:
        raise _named(exc, where) from None


def append_all_steps(
    engine: PythonEngine,
    messages: Sequence[Message],
    labels: Sequence[str],
    on_progress: Callable[[int], None] | None = None,
) -> Steps[list[AppendResult]]:
    """Append messages in the connection's transaction, in batches of up to BATCH_BYTES of JSON (one
    ``pge_append`` of an array each: every message of a batch is checked before any is written, so a refused
    message uses no position), running the Python-engine inline projections once per page of events
    (INLINE_PAGE) rather than once per message: the same documents, as views do not depend on how events are
    batched, for one sandbox call per page. ``on_progress`` is called with each batch's events as it is
    appended, the batches then of up to PROGRESS_BATCH_BYTES."""
    inline = bool(engine.loaded().names)
    # With inline projections, through the Python engine's entry (the guard lets it through): they are applied, per page
    entry = "pge_append_unapplied" if inline else "pge_append"
    results: list[AppendResult] = []
    owners: dict[int, str] = {}  # position -> the message's label, to name it in an error
    budget = BATCH_BYTES if on_progress is None else PROGRESS_BATCH_BYTES
    for first, texts in _batches([_text(m, label) for m, label in zip(messages, labels, strict=True)], budget):
        batch = yield from _append_batch(entry, texts, labels, first)
        if on_progress is not None:
            on_progress(sum(len(result.positions) for result in batch))
        for result, label in zip(batch, labels[first:], strict=False):
            results.append(result)
            if inline:
                owners.update(dict.fromkeys(result.positions, label))
            if len(owners) >= INLINE_PAGE:
                yield from _apply_page(engine, owners)
                owners = {}
    if owners:
        yield from _apply_page(engine, owners)
    return results


def _batches(texts: Sequence[str], budget: int = BATCH_BYTES) -> Iterator[tuple[int, list[str]]]:
    """(index of the first, the messages' JSON) of consecutive batches of up to ``budget`` bytes (at least one
    message each)."""
    first, size = 0, 0
    for n, text in enumerate(texts):
        if n > first and size + len(text) > budget:
            yield first, list(texts[first:n])
            first, size = n, 0
        size += len(text) + 1
    if first < len(texts):
        yield first, list(texts[first:])


# A NUL escaped in a JSON string (not an escaped backslash followed by "u0000"): text jsonb refuses
NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _refused_as_text(texts: Sequence[str]) -> int | None:
    """The number of the message whose JSON PostgreSQL refuses as jsonb text before any check runs (a NUL in a
    string: the only one JSON from :func:`_text` can hold), when one does."""
    return next((n for n, text in enumerate(texts, 1) if NUL_ESCAPE.search(text)), None)


def _append_batch(entry: str, texts: Sequence[str], labels: Sequence[str], first: int) -> Steps[list[AppendResult]]:
    """Append one batch (an array for ``entry``: ``pge_append`` or ``pge_append_unapplied``) of the messages from
    ``first`` on; an error names its message by its label, and ``messageNumber`` counts from the first message of
    the whole append."""
    try:
        (rows,) = yield from ask(Query(f"select {entry}(%s::jsonb)", ("[" + ",".join(texts) + "]",)))
    except errors.JsprojError as exc:
        number = exc.info.get("messageNumber")
        if number is None and isinstance(exc, errors.InvalidEventError):
            number = _refused_as_text(texts)
        if not isinstance(number, int) or not 1 <= number <= len(texts):
            raise
        message = exc.message.removeprefix(f"message {number}: ")
        raise exc.replace(f"{labels[first + number - 1]}: {message}", messageNumber=first + number) from None
    return [_result(row) for row in rows]


def _apply_page(engine: PythonEngine, owners: Mapping[int, str]) -> Steps[None]:
    """Apply the events at ``owners``' positions to the Python-engine inline projections (one engine call)."""
    loaded = engine.loaded()
    for _ in range(2):  # a deploy since the projections were loaded: route with the new ones
        records, documents, generation = yield from ask(
            Query(RECORDS_AT, (list(loaded.names), list(owners))),
            "inline projections",
        )
        if generation == loaded.generation:
            break
        loaded = yield from engine.refresh_steps()
    try:
        yield from _apply(engine, loaded, generation, records, documents, "")
    except errors.JsprojError as exc:
        label = owners.get(exc.info.get("position", -1))
        raise _named(exc, label or "") from None
