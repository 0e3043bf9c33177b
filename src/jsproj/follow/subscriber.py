"""A Python subscriber as a processor of the follower engine: its pages, its handler's calls, its checkpoint.

On its one connection the subscriber holds its :class:`~jsproj.follow.engine.Lease`
(waiting while another runner holds it), reads the next page of the log
after its checkpoint through :mod:`jsproj.store.log`, calls the handler on
each event its filters want (a savepoint each), and moves the checkpoint
with a compare-and-set in the same transaction as the handler's writes
(:mod:`jsproj.follow.subscriptions` is the API; docs/subscriptions.md the guide).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb, set_json_loads

from jsproj import errors
from jsproj.errors import SubscriptionStoppedError
from jsproj.follow.engine import LOST, Action, ErrorPolicy, Lease, Waker
from jsproj.store import log
from jsproj.store.identifiers import search_path
from jsproj.store.recorded import RecordedEvent, load_json
from jsproj.store.translate import translate

LOCK_CLASS = 1246974040  # advisory locks (LOCK_CLASS, hashtext(schema.name)): the runner of a subscription
SCAN_FACTOR = 10  # a page reads at most this many times page_size events, when filters leave some out
RETRY_SECONDS = (0.1, 30.0)  # on_error='retry': the first wait, and the longest

DEFAULT_PAGE_SIZE = 100  # events handed to the handler per page (and per transaction, by default)

Transaction = Literal["page", "event"]
OnError = Literal["stop", "retry"]
Start = Literal["beginning", "end"]


@dataclass(frozen=True)
class Options:
    """How a subscription reads and calls its handler (see :func:`subscribe`)."""

    event_types: tuple[str, ...] | None = None
    stream_types: tuple[str, ...] | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    transaction: Transaction = "page"
    on_error: OnError = "stop"
    start: Start = "beginning"
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")
        if self.transaction not in ("page", "event"):
            raise ValueError(f"transaction must be 'page' or 'event', not {self.transaction!r}")
        if self.on_error not in ("stop", "retry"):
            raise ValueError(f"on_error must be 'stop' or 'retry', not {self.on_error!r}")
        if self.start not in ("beginning", "end"):
            raise ValueError(f"start must be 'beginning' or 'end', not {self.start!r}")
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        for what in (self.event_types, self.stream_types):
            if what is not None and (not what or not all(isinstance(t, str) and t for t in what)):
                raise ValueError("event_types and stream_types are non-empty lists of names (or None: any)")


#: A lost connection reconnects; anything else ends the run (the handler stopping it, a database error).
SUBSCRIBER_POLICY = ErrorPolicy(((LOST, "reconnect"),))

#: A handler: the event, and the connection whose transaction commits with the checkpoint.
Handler = Callable[[RecordedEvent, psycopg.Connection[Any]], object]

# The next page after a checkpoint, in the order readers see: every event
# read (so that the checkpoint moves past those the filters leave out), the
# data only of those wanted, up to the page_size-th wanted one.
_PAGE = f"""
select tx, position, wanted, id, stream_id, stream_type, version, type, data, metadata, timestamp
from (select r.tx, r.position, w.wanted, r.id, r.stream_id, r.stream_type, r.version, r.type,
             case when w.wanted then r.data end as data, case when w.wanted then r.metadata end as metadata,
             r.timestamp, count(*) filter (where w.wanted) over (order by r.tx_id, r.position) as wanted_before
      from (select r.tx_id, r.tx_id::text as tx, r.position, r.id::text as id, r.stream_id, r.stream_type,
                   r.version, r.type, r.data, r.metadata, r.timestamp
            from pge_records() r
            where {log.after("r")}
            order by r.tx_id, r.position
            limit %(scan)s) as r
      cross join lateral (select (%(types)s::text[] is null or r.type = any(%(types)s::text[]))
                             and (%(streams)s::text[] is null or r.stream_type = any(%(streams)s::text[]))
                          as wanted) as w) as page
where wanted_before <= %(limit)s
order by tx::xid8, position
"""  # noqa: S608 -- constant fragments; every value is a parameter
# The compare-and-set of a checkpoint: only from where this runner read it.
_MOVE = """
update pge_subscriptions
set last_tx = %(to_tx)s::xid8, last_position = %(to_position)s, events = events + %(handled)s, status = 'running',
    error = null, updated_at = now()
where name = %(name)s and last_tx = %(from_tx)s::xid8 and last_position = %(from_position)s
"""


class _Moved(Exception):
    """The checkpoint was not where this runner read it (reset meanwhile): the transaction is undone."""


@dataclass(frozen=True)
class _Row:
    """An event of a page: where it is in the order, and the event if the filters want it."""

    at: tuple[str, int]
    event: RecordedEvent | None


@dataclass
class _Failure:
    """The handler raised on an event."""

    event: RecordedEvent
    error: Exception


@dataclass(frozen=True)
class SubscriberProcessor:
    """A subscription's runner as the follower engine drives it: lost connections reconnect; anything else
    (the handler stopping it, a database error) ends the run."""

    dsn: str
    schema: str
    name: str
    handler: Handler
    options: Options
    say: Callable[[int, str], None]
    stop: threading.Event

    @property
    def policy(self) -> ErrorPolicy:
        return SUBSCRIBER_POLICY

    def attach(self) -> _Attached:
        conn = psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=10, application_name=f"jsproj subscriber {self.name}"[:63]
        )
        try:
            with _translated(self.name):
                conn.execute(search_path(self.schema))
                set_json_loads(load_json, conn)
                options = self.options
                conn.execute(
                    "select pge_add_subscription(%s, %s, %s, %s)",
                    (self.name, _array(options.event_types), _array(options.stream_types), options.start == "end"),
                )
        except BaseException:
            conn.close()
            raise
        return _Attached(self, conn)

    def failed(self, exc: BaseException, action: Action, delay: float) -> None:
        self.say(logging.WARNING, f"lost the database ({_first_line(exc)}); reconnecting in {delay:.1f} s")


class _Attached:
    """The runner on its connection: the lease, the checkpoint, pages."""

    def __init__(self, processor: SubscriberProcessor, conn: psycopg.Connection[Any]) -> None:
        self.p = processor
        self.conn = conn
        # (pge_subscription_lease: the advisory lock (LOCK_CLASS, hashtext(schema.name)), as the store's owner)
        self.lease = Lease.subscription(processor.name)
        self.waker = Waker(processor.options.poll_interval)
        self.at: tuple[str, int] | None = None  # the checkpoint, once the lease is held
        self.waiting = False
        self.failures = 0  # consecutive failures (on_error='retry' backs off by them)

    def high_water(self) -> tuple[int, int]:
        with _translated(self.p.name):
            row = self.conn.execute(log.HIGH_WATER).fetchone()
        return (int(row[0]), row[1]) if row else (0, 0)

    def caught_up(self, target: tuple[int, int], busy: bool) -> bool:
        return self.at is not None and (int(self.at[0]), self.at[1]) >= target

    def idle(self) -> None:
        if self.at is None:  # another runner holds it
            self.p.stop.wait(min(self.p.options.poll_interval, 1.0))
        else:
            self.waker.wait(self.conn, self.p.stop)

    def detach(self, *, clean: bool) -> None:
        self.conn.close()  # the lock goes with it

    def step(self, target: tuple[int, int] | None) -> bool:
        """A page (once the lease is held); False when there was nothing to do."""
        with _translated(self.p.name):
            at = self.at if self.at is not None else self._acquire()
            if at is None or (target is not None and self.caught_up(target, False)):
                return False
            try:
                moved = self._page(at) if self.p.options.transaction == "page" else self._one_by_one(at)
            except _Moved:
                self.p.say(logging.WARNING, "the checkpoint moved under this runner (a reset?); reading it again")
                self.at = self._checkpoint()
                return True
            busy, self.at = moved != at, moved
            if busy:
                self.waker.worked()
            return busy or self.failures > 0  # after a failure, its wait has been waited

    def _acquire(self) -> tuple[str, int] | None:
        """Take the subscription's lease and read its checkpoint; None (said once) while another runner holds it."""
        if not self.lease.take(self.conn):
            if not self.waiting:
                self.p.say(logging.INFO, "another runner holds it; waiting to take over")
                self.waiting = True
            return None
        self.waker.listen(self.conn)
        if self.waiting:
            self.p.say(logging.INFO, "took over")
        self.at = self._checkpoint()
        return self.at

    def _checkpoint(self) -> tuple[str, int]:
        """The stored checkpoint; a stopped subscription runs again (its error is kept until it moves on)."""
        row = self.conn.execute(
            """update pge_subscriptions set status = 'running', updated_at = now() where name = %s
               returning last_tx::text, last_position""",
            (self.p.name,),
        ).fetchone()
        if row is None:
            raise errors.StoreError(f"subscription {self.p.name} was deleted while its runner held it")
        return str(row[0]), int(row[1])

    def _read(self, at: tuple[str, int]) -> list[_Row]:
        options = self.p.options
        filtered = options.event_types or options.stream_types
        params = {"tx": at[0], "position": at[1], "limit": options.page_size,
                  "scan": options.page_size * (SCAN_FACTOR if filtered else 1),
                  "types": _array(options.event_types), "streams": _array(options.stream_types)}  # fmt: skip
        rows = self.conn.execute(_PAGE, params).fetchall()
        return [_Row((r[0], r[1]), RecordedEvent(r[1], *r[3:]) if r[2] else None) for r in rows]

    def _page(self, at: tuple[str, int]) -> tuple[str, int]:
        """One page in one transaction: read, handle each event (a savepoint each), move the checkpoint."""
        failure: _Failure | None = None
        with self.conn.transaction():
            rows = self._read(at)
            done, handled = (rows[-1].at if rows else at), 0
            for index, row in enumerate(rows):
                if row.event is None:
                    continue
                failure = self._call(row.event)
                if failure is not None:
                    done = rows[index - 1].at if index else at
                    break
                handled += 1
            if done != at:
                self._move(at, done, handled)
            if failure is not None:
                self._record(failure)
        self._after(failure)
        return done

    def _one_by_one(self, at: tuple[str, int]) -> tuple[str, int]:
        """One page, a transaction per event handled (and one for a run of events the filters left out)."""
        rows = self._read(at)
        for row in rows:
            if row.event is None:
                continue
            with self.conn.transaction():
                failure = self._call(row.event)
                if failure is None:
                    self._move(at, row.at, 1)
                else:
                    self._record(failure)
            self._after(failure)
            if failure is not None:
                return at
            at = row.at
        if rows and rows[-1].at != at:
            with self.conn.transaction():
                self._move(at, rows[-1].at, 0)
            at = rows[-1].at
        return at

    def _call(self, event: RecordedEvent) -> _Failure | None:
        """The handler on one event, in a savepoint: what it wrote is undone if it raises."""
        try:
            with self.conn.transaction():
                self.p.handler(event, self.conn)
        except Exception as exc:
            if self.conn.broken or _connection_lost(exc):
                raise  # the connection is lost, not the handler at fault: reconnect and read again
            return _Failure(event, exc)
        return None

    def _move(self, start: tuple[str, int], to: tuple[str, int], handled: int) -> None:
        params = {"name": self.p.name, "from_tx": start[0], "from_position": start[1], "to_tx": to[0],
                  "to_position": to[1], "handled": handled}  # fmt: skip
        if self.conn.execute(_MOVE, params).rowcount != 1:
            raise _Moved(self.p.name)

    def _record(self, failure: _Failure) -> None:
        """Keep the failure on the subscription's row (``jsproj status``), with the checkpoint before it."""
        status = "stopped" if self.p.options.on_error == "stop" else "retrying"
        self.conn.execute(
            "update pge_subscriptions set status = %s, error = %s, updated_at = now() where name = %s",
            (status, Jsonb(_describe(self.p.name, failure)), self.p.name),
        )

    def _after(self, failure: _Failure | None) -> None:
        """After a transaction: raise (on_error='stop') or wait before the event is tried again ('retry')."""
        if failure is None:
            self.failures = 0
            return
        info = _describe(self.p.name, failure)
        where = f"at event {info['position']} ({info['eventType']} of {info['streamId']})"
        if self.p.options.on_error == "stop":
            message = f"subscription {self.p.name} stopped {where}: {info['kind']}: {info['message']}"
            fields = {k: info[k] for k in ("subscription", "position", "eventId", "streamId", "eventType")}
            cause = {k: info[k] for k in ("kind", "message", "traceback")}
            raise SubscriptionStoppedError(message, **fields, error=cause) from failure.error
        first, longest = RETRY_SECONDS
        delay = min(first * 2**self.failures, longest)
        self.failures += 1
        self.p.say(logging.WARNING, f"handler failed {where}: {info['kind']}: {info['message']}; "
                   f"retrying in {delay:.1f} s")  # fmt: skip
        self.p.stop.wait(delay)


def _describe(name: str, failure: _Failure) -> dict[str, Any]:
    event, exc = failure.event, failure.error
    return {
        "kind": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "subscription": name,
        "position": event.position,
        "eventId": event.event_id,
        "streamId": event.stream_id,
        "eventType": event.type,
        "traceback": "".join(traceback.format_exception(exc, limit=-10)),
    }


@contextmanager
def _translated(name: str) -> Iterator[None]:
    """Database errors as jsproj errors, but a lost connection (the engine reconnects)."""
    try:
        yield
    except psycopg.Error as exc:
        if isinstance(exc, LOST):
            raise
        raise translate(exc, f"subscription {name}") from exc


def _connection_lost(exc: Exception) -> bool:
    """Whether ``exc`` means the connection went away (its SQLSTATE class 08, or a server shutting down:
    57P01-57P03), rather than the handler's statement failing (a timeout, a deadlock, a lock not granted)."""
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate or ""
    return not state or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def _array(names: Sequence[str] | None) -> list[str] | None:
    return list(names) if names is not None else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
