"""Waiting in tests: on a condition with a deadline (never a sleep as synchronisation), and a daemon in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from jsproj.follow.daemon import Daemon


def wait_until(condition: Callable[[], bool], deadline: float = 60.0, interval: float = 0.02) -> None:
    """Return once ``condition()`` holds; fail the test if it does not within ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met before the deadline"
        time.sleep(interval)


class Runner(Protocol):
    """What runs until stopped: a daemon, a fleet of them."""

    def run(self) -> Any: ...

    def stop(self) -> None: ...


R = TypeVar("R", bound=Runner)


@contextmanager
def running(worker: R) -> Iterator[R]:
    """``worker.run()`` in a thread of the test, stopped (and its thread ended) afterwards."""
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()


@contextmanager
def daemon_thread(dsn: str, **options: Any) -> Iterator[Daemon]:
    """A daemon running in a thread of the test, stopped (and its thread ended) afterwards."""
    with running(Daemon(dsn, poll_interval=0.05, **options)) as worker:
        yield worker
