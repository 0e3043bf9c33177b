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
``poll_interval`` otherwise: a subscriber is a processor of the follower
engine (:mod:`jsproj.follow.subscriber`, :mod:`jsproj.follow.engine`), as
the daemon's projections are. docs/subscriptions.md is the guide.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from jsproj import logs
from jsproj.errors import InvalidNameError, SubscriberImportError
from jsproj.follow.engine import Follower
from jsproj.follow.subscriber import (
    DEFAULT_PAGE_SIZE,
    LOCK_CLASS,
    Handler,
    OnError,
    Options,
    Start,
    SubscriberProcessor,
    Transaction,
)
from jsproj.store.recorded import RecordedEvent
from jsproj.store.sync import EventStore

logger = logging.getLogger("jsproj.subscribers")

__all__ = ["LOCK_CLASS", "Handler", "Options", "Runner", "Subscriber", "Subscription", "load_subscribers",
           "subscribe", "subscriber"]  # fmt: skip

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$")


def check_name(name: str) -> str:
    """``name`` if it can name a subscription (letters, digits, ``_ . : -``; at most 100 characters)."""
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidNameError(
            f"subscription name {name!r} is not valid: use letters, digits and _ . : -, "
            "start with a letter or _, at most 100 characters"
        )
    return name


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
        self.log = log or (lambda message: None)  # besides the ``jsproj.subscribers`` logger
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- running ------------------------------------------------------------------

    def run(self, *, until_caught_up: bool = False) -> bool:
        """Handle events until ``stop()``; with ``until_caught_up``, until everything committed before the
        call is handled. Waits while another runner holds the subscription. Survives the database going
        away (reconnects and resumes from the checkpoint).

        Returns True when caught up, False when stopped first. Raises
        :class:`~jsproj.errors.SubscriptionStoppedError` when the handler
        raised and ``on_error`` is ``'stop'``.
        """
        processor = SubscriberProcessor(self.dsn, self.schema, self.name, self.handler, self.options, self.say,
                                        self._stop)  # fmt: skip
        try:
            return Follower(processor, self._stop, until_caught_up=until_caught_up).run()
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
            self.say(logging.ERROR, str(exc))

    def say(self, level: int, message: str) -> None:
        """Log ``NAME: message`` on the ``jsproj.subscribers`` logger (the JSON lines with a ``subscription``
        field) and pass it to ``log``."""
        logs.say(logger, level, f"{self.name}: {message}", subscription=self.name, schema=self.schema)
        self.log(f"{self.name}: {message}")


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
                subscription.say(logging.ERROR, str(exc))

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
