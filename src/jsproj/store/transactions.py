"""Appends that commit with the application's own writes: a transaction's queued messages.

``store.transaction()`` hands the application a connection in a transaction
and a :class:`Transaction` that queues messages; they are appended when the
block ends without an error, just before the commit (so a block that raises
tried no append: nothing is stored, not even a position is used). Every
queued message is appended in order, with :func:`jsproj.store.appending.append_all_steps`,
so a transaction's inline projections run once per page of events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsproj import errors
from jsproj.store.appending import Message, append_all_steps, inline_steps, message_of
from jsproj.store.identifiers import search_path
from jsproj.store.python_engine import PythonEngine
from jsproj.store.recorded import AppendResult
from jsproj.store.steps import Query, Steps, ask


@dataclass
class PendingAppend:
    """A queued message; its :attr:`result` is known once the transaction's block has ended."""

    message: Message
    _result: AppendResult | None = None

    @property
    def result(self) -> AppendResult:
        if self._result is None:
            raise errors.InputError(
                "this append is written when the transaction's block ends: read its result after the `with` block"
            )
        return self._result


@dataclass
class Transaction:
    """The connection of one transaction (for the application's statements) and the messages it appends."""

    conn: Any  # psycopg.Connection or psycopg.AsyncConnection, in the transaction
    pending: list[PendingAppend] = field(default_factory=list)
    closed: bool = False

    def append(
        self,
        message: Message | None = None,
        *,
        stream_id: str | None = None,
        type: str | None = None,
        events: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> PendingAppend:
        """Queue one message (the arguments of :meth:`jsproj.EventStore.append`), appended when the block ends."""
        if self.closed:
            raise errors.InputError("this transaction's block has ended: append in a new store.transaction()")
        queued = PendingAppend(message_of(message, stream_id, type, events, expected_version, metadata))
        self.pending.append(queued)
        return queued

    def settle(self, results: Sequence[AppendResult]) -> None:
        """Give each queued append its result, once the transaction committed (or, on a connection of the
        application's, once the appends are in its transaction)."""
        for queued, result in zip(self.pending, results, strict=True):
            queued._result = result

    def close(self) -> None:
        """The block has ended: later appends are refused, not silently dropped."""
        self.closed = True


def pending_steps(engine: PythonEngine, tx: Transaction, schema: str | None) -> Steps[list[AppendResult]]:
    """Append ``tx``'s queued messages in its transaction (a connection of the application's: in ``schema``,
    its search_path put back afterwards); the results, for :meth:`Transaction.settle`."""
    if not tx.pending:
        return []
    if schema is not None:  # for this transaction only, and put back: the application's statements go on as before
        (before,) = yield from ask(Query("select current_setting('search_path')"))
        yield from ask(Query(search_path(schema, local=True), rows="none"))
    yield from inline_steps(engine, reload=True)
    labels = [f"append {n + 1} of the transaction" for n in range(len(tx.pending))]
    results = yield from append_all_steps(engine, [p.message for p in tx.pending], labels)
    if schema is not None:
        yield from ask(Query("select set_config('search_path', %s, true)", (before,), rows="none"))
    return results
