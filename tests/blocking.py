"""The asyncio store driven from synchronous tests, so the store's own test cases run against both stores."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from jsproj.store.aio import AsyncEventStore


class BlockingAsyncStore:
    """An :class:`AsyncEventStore` whose coroutine methods block until done, on an event loop thread of its own."""

    def __init__(self, dsn: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.store: AsyncEventStore = self.wait(AsyncEventStore.open(dsn, **options))

    def wait(self, work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def __getattr__(self, name: str) -> Any:
        return blocking(getattr(self.store, name), self.wait)

    def views(self, name: str) -> Any:
        """The store's AsyncView, its coroutine methods blocking too."""
        return Blocking(self.store.views(name), self.wait)

    def close(self) -> None:
        self.wait(self.store.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def __enter__(self) -> BlockingAsyncStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def blocking(found: Any, wait: Callable[[Coroutine[Any, Any, Any]], Any]) -> Any:
    """``found`` itself, or (a coroutine function) a function that waits for it."""
    if not inspect.iscoroutinefunction(found):
        return found
    return lambda *args, **kwargs: wait(found(*args, **kwargs))


class Blocking:
    """Any object whose coroutine methods block until done, on a given loop's ``wait``."""

    def __init__(self, wrapped: Any, wait: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._wrapped = wrapped
        self._wait = wait

    def __getattr__(self, name: str) -> Any:
        return blocking(getattr(self._wrapped, name), self._wait)
