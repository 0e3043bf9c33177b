"""Python subscribers: host-language handlers that receive every event in order, exactly once with their own writes.

``subscribe(store, name, handler)`` makes a :class:`Subscription`; its
runner reads the log in the gap-safe order of ``EventStore.read_all``
(transaction, then position, only below every running transaction) and
calls ``handler(event, conn)`` for each event its filters let through.
``conn`` is a psycopg connection inside a transaction in which the runner
also moves the subscription's checkpoint (a row of ``pge_subscriptions``,
with a compare-and-set): what the handler writes through ``conn`` commits
with the checkpoint or not at all -- exactly once. Anything else it does
(mail, HTTP) happens at least once: after a crash, the events of the
transaction that did not commit are handed over again.

One runner per subscription at a time: it holds a session advisory lock
(:data:`LOCK_CLASS`, hashtext(schema.name)) on the one connection it reads, handles
and commits on, so its lock, its transaction and its checkpoint go
together; a second runner waits for the lock and takes over when the
first dies. Runners are woken by the store's notify trigger (the async
daemons' channel), and poll briefly after work and every
``poll_interval`` otherwise. docs/subscriptions.md is the guide.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb, set_json_loads

from jsproj import errors
from jsproj.errors import InvalidNameError, SubscriberImportError, SubscriptionStoppedError
from jsproj.store.identifiers import search_path
from jsproj.store.log import HIGH_WATER
from jsproj.store.sync import EventStore, RecordedEvent, load_json, translate

LOCK_CLASS = 1246974040  # advisory locks (LOCK_CLASS, hashtext(schema.name)): the runner of a subscription
DEFAULT_PAGE_SIZE = 100  # events handed to the handler per page (and per transaction, by default)
SCAN_FACTOR = 10  # a page reads at most this many times page_size events, when filters leave some out
BRISK_SECONDS = 2.0  # after work, poll this long at BRISK_POLL (appends that did not notify: async.sql)
BRISK_POLL = 0.01
RETRY_SECONDS = (0.1, 30.0)  # on_error='retry': the first wait, and the longest
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$")

#: A handler: the event, and the connection whose transaction commits with the checkpoint.
Handler = Callable[[RecordedEvent, psycopg.Connection[Any]], object]
Transaction = Literal["page", "event"]
OnError = Literal["stop", "retry"]
Start = Literal["beginning", "end"]

# The next page after a checkpoint, in the order readers see: every event
# read (so that the checkpoint moves past those the filters leave out), the
# data only of those wanted, up to the page_size-th wanted one.
_PAGE = """
select tx, position, wanted, id, stream_id, stream_type, version, type, data, metadata, timestamp
from (select r.tx, r.position, w.wanted, r.id, r.stream_id, r.stream_type, r.version, r.type,
             case when w.wanted then r.data end as data, case when w.wanted then r.metadata end as metadata,
             r.timestamp, count(*) filter (where w.wanted) over (order by r.tx_id, r.position) as wanted_before
      from (select r.tx_id, r.tx_id::text as tx, r.position, r.id::text as id, r.stream_id, r.stream_type,
                   r.version, r.type, r.data, r.metadata, r.timestamp
            from pge_records() r
            where (r.tx_id, r.position) > (%(tx)s::xid8, %(position)s)
              and r.tx_id < pg_snapshot_xmin(pg_current_snapshot())
            order by r.tx_id, r.position
            limit %(scan)s) as r
      cross join lateral (select (%(types)s::text[] is null or r.type = any(%(types)s::text[]))
                             and (%(streams)s::text[] is null or r.stream_type = any(%(streams)s::text[]))
                          as wanted) as w) as page
where wanted_before <= %(limit)s
order by tx::xid8, position
"""
# The compare-and-set of a checkpoint: only from where this runner read it.
_MOVE = """
update pge_subscriptions
set last_tx = %(to_tx)s::xid8, last_position = %(to_position)s, events = events + %(handled)s, status = 'running',
    error = null, updated_at = now()
where name = %(name)s and last_tx = %(from_tx)s::xid8 and last_position = %(from_position)s
"""


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


def check_name(name: str) -> str:
    """``name`` if it can name a subscription (letters, digits, ``_ . : -``; at most 100 characters)."""
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidNameError(
            f"subscription name {name!r} is not valid: use letters, digits and _ . : -, "
            "start with a letter or _, at most 100 characters"
        )
    return name


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


class Subscription:
    """A handler following the log: ``run()``, ``run_forever()``, or ``start()`` / ``stop()`` on a thread.

    Made by :func:`subscribe` (or a :class:`Subscriber`'s ``subscription``).
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: Handler,
        options: Options | None = None,
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not callable(handler):
            raise TypeError("handler must be callable as handler(event, conn)")
        self.dsn = store.dsn
        self.schema = store.schema
        self.name = check_name(name)
        self.handler = handler
        self.options = options or Options()
        self.log = log or (lambda message: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._failures = 0  # consecutive failures (on_error='retry' backs off by them)

    # -- running ------------------------------------------------------------------

    def run(self, *, until_caught_up: bool = False) -> bool:
        """Handle events until ``stop()``; with ``until_caught_up``, until everything committed before the
        call is handled. Waits while another runner holds the subscription. Survives the database going
        away (reconnects and resumes from the checkpoint).

        Returns True when caught up, False when stopped first. Raises
        :class:`~jsproj.errors.SubscriptionStoppedError` when the handler
        raised and ``on_error`` is ``'stop'``.
        """
        target: tuple[int, int] | None = None
        delay = 0.1
        try:
            while not self._stop.is_set():
                try:
                    with self._connect() as conn:
                        if until_caught_up and target is None:
                            row = conn.execute(HIGH_WATER).fetchone()
                            target = (int(row[0]), row[1]) if row else (0, 0)
                        if self._acquire(conn):
                            delay = 0.1  # connected again: the next outage starts with a short wait
                            return self._follow(conn, target if until_caught_up else None)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self.log(f"{self.name}: lost the database ({_first_line(exc)}); reconnecting in {delay:.1f} s")
                    self._stop.wait(delay)
                    delay = min(delay * 2, 5.0)
                except psycopg.Error as exc:
                    raise translate(exc, f"subscription {self.name}") from exc
            return False
        finally:
            self._stop.clear()  # a later run() runs again

    def run_forever(self) -> None:
        """:meth:`run` until :meth:`stop` (from another thread or a signal handler)."""
        self.run()

    def start(self) -> Subscription:
        """Run on a background thread (a daemon thread) until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"subscription {self.name} is already running")
        self._error = None
        self._stop.clear()
        self._thread = threading.Thread(target=self._background, name=f"jsproj-subscriber-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Finish the current page and stop. With ``wait`` (and a thread from :meth:`start`), wait for it and
        raise what ended it, if anything did (a :class:`~jsproj.errors.SubscriptionStoppedError`, say)."""
        self._stop.set()
        if not wait or self._thread is None:
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"subscription {self.name} did not stop within {timeout:g} s")
        self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error

    @property
    def running(self) -> bool:
        """Whether the background thread of :meth:`start` is running."""
        return self._thread is not None and self._thread.is_alive()

    def _background(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # noqa: BLE001 - kept for stop() to raise in the thread that asks
            self._error = exc
            self.log(f"{self.name}: {exc}")

    # -- the connection, the lock -------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=10, application_name=f"jsproj subscriber {self.name}"[:63]
        )
        conn.execute(search_path(self.schema))
        set_json_loads(load_json, conn)
        return conn

    def _acquire(self, conn: psycopg.Connection[Any]) -> bool:
        """Register the subscription and take its lock, waiting while another runner holds it; False if
        stopped first."""
        options = self.options
        conn.execute(
            "select pge_add_subscription(%s, %s, %s, %s)",
            (self.name, _array(options.event_types), _array(options.stream_types), options.start == "end"),
        )
        waiting = False
        while not self._stop.is_set():
            # Advisory locks span the database: the key names the schema too (a subscription per store).
            key = (LOCK_CLASS, f"{self.schema}.{self.name}")
            if conn.execute("select pg_try_advisory_lock(%s, hashtext(%s))", key).fetchone() == (True,):
                conn.execute("listen pge_events")
                if waiting:
                    self.log(f"{self.name}: took over")
                return True
            if not waiting:
                self.log(f"{self.name}: another runner holds it; waiting to take over")
                waiting = True
            self._stop.wait(min(options.poll_interval, 1.0))
        return False

    # -- following the log --------------------------------------------------------

    def _follow(self, conn: psycopg.Connection[Any], target: tuple[int, int] | None) -> bool:
        """Pages until stopped, or (with a target) until the checkpoint reaches it."""
        at = self._checkpoint(conn)
        last_work = 0.0
        while not self._stop.is_set():
            if target is not None and (int(at[0]), at[1]) >= target:
                return True
            try:
                moved = self._page(conn, at) if self.options.transaction == "page" else self._one_by_one(conn, at)
            except _Moved:
                self.log(f"{self.name}: the checkpoint moved under this runner (a reset?); reading it again")
                at = self._checkpoint(conn)
                continue
            if moved != at:
                at, last_work = moved, time.monotonic()
            elif self._failures == 0:  # nothing new (a failure has waited already)
                self._wait(conn, brisk=time.monotonic() - last_work < BRISK_SECONDS)
        return False

    def _checkpoint(self, conn: psycopg.Connection[Any]) -> tuple[str, int]:
        """The stored checkpoint; a stopped subscription runs again (its error is kept until it moves on)."""
        row = conn.execute(
            """update pge_subscriptions set status = 'running', updated_at = now() where name = %s
               returning last_tx::text, last_position""",
            (self.name,),
        ).fetchone()
        if row is None:
            raise errors.StoreError(f"subscription {self.name} was deleted while its runner held it")
        return str(row[0]), int(row[1])

    def _wait(self, conn: psycopg.Connection[Any], *, brisk: bool) -> None:
        """Until events are appended (NOTIFY), the poll interval passes, or -- after recent work -- briefly."""
        deadline = time.monotonic() + (
            min(BRISK_POLL, self.options.poll_interval) if brisk else self.options.poll_interval
        )
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for _ in conn.notifies(timeout=min(left, 0.25), stop_after=1):
                return

    def _read(self, conn: psycopg.Connection[Any], at: tuple[str, int]) -> list[_Row]:
        options = self.options
        rows = conn.execute(
            _PAGE,
            {
                "tx": at[0],
                "position": at[1],
                "scan": options.page_size * (SCAN_FACTOR if options.event_types or options.stream_types else 1),
                "limit": options.page_size,
                "types": _array(options.event_types),
                "streams": _array(options.stream_types),
            },
        ).fetchall()
        return [_Row((r[0], r[1]), RecordedEvent(r[1], *r[3:]) if r[2] else None) for r in rows]

    def _page(self, conn: psycopg.Connection[Any], at: tuple[str, int]) -> tuple[str, int]:
        """One page in one transaction: read, handle each event (a savepoint each), move the checkpoint."""
        failure: _Failure | None = None
        with conn.transaction():
            rows = self._read(conn, at)
            done, handled = (rows[-1].at if rows else at), 0
            for index, row in enumerate(rows):
                if row.event is None:
                    continue
                failure = self._call(conn, row.event)
                if failure is not None:
                    done = rows[index - 1].at if index else at
                    break
                handled += 1
            if done != at:
                self._move(conn, at, done, handled)
            if failure is not None:
                self._record(conn, failure)
        self._after(failure)
        return done

    def _one_by_one(self, conn: psycopg.Connection[Any], at: tuple[str, int]) -> tuple[str, int]:
        """One page, a transaction per event handled (and one for a run of events the filters left out)."""
        rows = self._read(conn, at)
        for row in rows:
            if row.event is None:
                continue
            with conn.transaction():
                failure = self._call(conn, row.event)
                if failure is None:
                    self._move(conn, at, row.at, 1)
                else:
                    self._record(conn, failure)
            self._after(failure)
            if failure is not None:
                return at
            at = row.at
        if rows and rows[-1].at != at:
            with conn.transaction():
                self._move(conn, at, rows[-1].at, 0)
            at = rows[-1].at
        return at

    def _call(self, conn: psycopg.Connection[Any], event: RecordedEvent) -> _Failure | None:
        """The handler on one event, in a savepoint: what it wrote is undone if it raises."""
        try:
            with conn.transaction():
                self.handler(event, conn)
        except Exception as exc:
            if conn.broken or _connection_lost(exc):
                raise  # the connection is lost, not the handler at fault: reconnect and read again
            return _Failure(event, exc)
        return None

    def _move(self, conn: psycopg.Connection[Any], start: tuple[str, int], to: tuple[str, int], handled: int) -> None:
        params = {"name": self.name, "from_tx": start[0], "from_position": start[1], "to_tx": to[0],
                  "to_position": to[1], "handled": handled}  # fmt: skip
        if conn.execute(_MOVE, params).rowcount != 1:
            raise _Moved(self.name)

    # -- failures -----------------------------------------------------------------

    def _record(self, conn: psycopg.Connection[Any], failure: _Failure) -> None:
        """Keep the failure on the subscription's row (``jsproj status``), with the checkpoint before it."""
        status = "stopped" if self.options.on_error == "stop" else "retrying"
        conn.execute(
            "update pge_subscriptions set status = %s, error = %s, updated_at = now() where name = %s",
            (status, Jsonb(self._describe(failure)), self.name),
        )

    def _describe(self, failure: _Failure) -> dict[str, Any]:
        event, exc = failure.event, failure.error
        return {
            "kind": type(exc).__name__,
            "message": str(exc) or type(exc).__name__,
            "subscription": self.name,
            "position": event.position,
            "eventId": event.event_id,
            "streamId": event.stream_id,
            "eventType": event.type,
            "traceback": "".join(traceback.format_exception(exc, limit=-10)),
        }

    def _after(self, failure: _Failure | None) -> None:
        """After a transaction: raise (on_error='stop') or wait before the event is tried again ('retry')."""
        if failure is None:
            self._failures = 0
            return
        info = self._describe(failure)
        where = f"at event {info['position']} ({info['eventType']} of {info['streamId']})"
        if self.options.on_error == "stop":
            message = f"subscription {self.name} stopped {where}: {info['kind']}: {info['message']}"
            fields = {k: info[k] for k in ("subscription", "position", "eventId", "streamId", "eventType")}
            cause = {k: info[k] for k in ("kind", "message", "traceback")}
            raise SubscriptionStoppedError(message, **fields, error=cause) from failure.error
        first, longest = RETRY_SECONDS
        delay = min(first * 2**self._failures, longest)
        self._failures += 1
        self.log(f"{self.name}: handler failed {where}: {info['kind']}: {info['message']}; retrying in {delay:.1f} s")
        self._stop.wait(delay)


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


def _options(
    event_types: Iterable[str] | None,
    stream_types: Iterable[str] | None,
    **rest: Any,
) -> Options:
    def names(given: Iterable[str] | None) -> tuple[str, ...] | None:
        if isinstance(given, str):
            return (given,)
        return tuple(given) if given is not None else None

    return Options(event_types=names(event_types), stream_types=names(stream_types), **rest)


def subscribe(
    store: EventStore,
    name: str,
    handler: Handler,
    *,
    event_types: Iterable[str] | None = None,
    stream_types: Iterable[str] | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    transaction: Transaction = "page",
    on_error: OnError = "stop",
    start: Start = "beginning",
    poll_interval: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> Subscription:
    """A subscription ``name`` calling ``handler(event, conn)`` for every event, in order (nothing runs yet).

    - ``event_types`` / ``stream_types``: only events of these types / of
      streams of these types (None: any).
    - ``page_size``: events handed over per page read (default 100).
    - ``transaction``: ``'page'`` (default: one transaction per page, the
      handler's writes of the whole page and the checkpoint commit
      together) or ``'event'`` (one per event).
    - ``on_error``: when the handler raises, its writes for that event are
      undone, the events before it commit, and the error is recorded on
      the subscription; ``'stop'`` (default) then stops the runner with
      :class:`~jsproj.errors.SubscriptionStoppedError` (its next run calls
      the handler on that event again), ``'retry'`` calls it again after a
      growing wait (up to 30 s) until it passes.
    - ``start``: where a new subscription begins: ``'beginning'`` of the
      log (default) or its ``'end'``.
    - ``poll_interval``: seconds between polls when no notification comes.
    """
    options = _options(event_types, stream_types, page_size=page_size, transaction=transaction,
                       on_error=on_error, start=start, poll_interval=poll_interval)  # fmt: skip
    return Subscription(store, name, handler, options, log=log)


# -- subscribers by dotted path (jsproj subscribers MODULE[:ATTR]) ------------------


@dataclass(frozen=True)
class Subscriber:
    """A handler with its subscription's name and options, made by :func:`subscriber`; still callable as
    the handler. ``jsproj subscribers MODULE:ATTR`` runs it."""

    name: str
    handler: Handler
    options: Options = field(default_factory=Options)

    def __call__(self, event: RecordedEvent, conn: psycopg.Connection[Any]) -> object:
        return self.handler(event, conn)

    def subscription(
        self, store: EventStore, *, log: Callable[[str], None] | None = None, **options: Any
    ) -> Subscription:
        """Its :class:`Subscription` on ``store`` (``options`` override the decorator's, e.g. poll_interval)."""
        return Subscription(store, self.name, self.handler, replace(self.options, **options), log=log)


def subscriber(
    name: str,
    *,
    event_types: Iterable[str] | None = None,
    stream_types: Iterable[str] | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    transaction: Transaction = "page",
    on_error: OnError = "stop",
    start: Start = "beginning",
) -> Callable[[Handler], Subscriber]:
    """Decorate a handler as subscriber ``name`` (the options of :func:`subscribe`), for ``jsproj subscribers``."""
    check_name(name)
    options = _options(event_types, stream_types, page_size=page_size, transaction=transaction,
                       on_error=on_error, start=start)  # fmt: skip

    def decorate(handler: Handler) -> Subscriber:
        return Subscriber(name, handler, options)

    return decorate


def load_subscribers(targets: Sequence[str], *, path: str | None = None) -> list[Subscriber]:
    """The subscribers ``targets`` name: ``module:attr`` (a :class:`Subscriber`), or ``module`` (every
    Subscriber it defines at top level). ``path`` (default: the working directory) is put first on
    ``sys.path``, so a project's modules import as they do in ``python -m``."""
    folder = path if path is not None else os.getcwd()
    if folder not in sys.path:
        sys.path.insert(0, folder)
    found: list[Subscriber] = []
    for target in targets:
        found += _load(target)
    names = [s.name for s in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SubscriberImportError(f"two subscribers are named {', '.join(twice)}: names must be unique")
    return found


def _load(target: str) -> list[Subscriber]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any error it raises on import is reported
        raise SubscriberImportError(f"cannot import {module_name!r} ({target}): {type(exc).__name__}: {exc}") from exc
    if not attr:
        found = [v for v in vars(module).values() if isinstance(v, Subscriber)]
        if not found:
            raise SubscriberImportError(f"module {module_name!r} defines no subscriber (decorate a handler with "
                                        "@jsproj.subscriber(name))")  # fmt: skip
        return found
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise SubscriberImportError(f"{module_name!r} has no attribute {attr!r} ({target})")
        value = getattr(value, part)
    if not isinstance(value, Subscriber):
        raise SubscriberImportError(
            f"{target} is not a subscriber: decorate it with @jsproj.subscriber(name), so that its checkpoint "
            "has a stable name"
        )
    return [value]


class Runner:
    """Several subscriptions in one process, a thread each: what ``jsproj subscribers`` runs."""

    def __init__(self, subscriptions: Sequence[Subscription]) -> None:
        self.subscriptions = list(subscriptions)

    def run(self, *, until_caught_up: bool = False) -> dict[str, BaseException]:
        """Run every subscription until :meth:`stop` (or until each caught up); the errors that ended some,
        by name. One that stops on an error does not stop the others."""
        failed: dict[str, BaseException] = {}

        def one(subscription: Subscription) -> None:
            try:
                subscription.run(until_caught_up=until_caught_up)
            except BaseException as exc:  # noqa: BLE001 - reported by name to the caller
                failed[subscription.name] = exc
                subscription.log(f"{subscription.name}: {exc}")

        threads = [threading.Thread(target=one, args=(s,), name=f"jsproj-subscriber-{s.name}", daemon=True)
                   for s in self.subscriptions]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # with a timeout: signal handlers run meanwhile
                thread.join(0.25)
        return failed

    def stop(self) -> None:
        """Ask every subscription to finish its page and return (safe in a signal handler)."""
        for subscription in self.subscriptions:
            subscription.stop(wait=False)
