"""The asyncio store driven from synchronous tests, so the store's own test cases run against both stores."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Coroutine
from typing import Any

from jsproj.aio import AsyncEventStore


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
        found = getattr(self.store, name)
        if not inspect.iscoroutinefunction(found):
            return found
        return lambda *args, **kwargs: self.wait(found(*args, **kwargs))

    def close(self) -> None:
        self.wait(self.store.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def __enter__(self) -> BlockingAsyncStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
