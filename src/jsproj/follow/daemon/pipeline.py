"""The page pipeline: the next page read ahead while one is applied, the one before committed meanwhile.

Three things overlap: the reading connection reads page n+1 (a thread), the
loop's thread applies page n in the sandbox, and the work connection commits
page n-1 (a thread). A page's size starts at :data:`FIRST_PAGE` after an
idle spell and doubles while pages come back full, up to the page size (or
to where a page was cut around a limit). A page is applied only once the
one before it committed (``settled``): if that one was undone (its progress
had moved under it), the one in hand is dropped too (:class:`Undone`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg

from jsproj import errors
from jsproj.follow.daemon.pages import Applied, Prepared, commit
from jsproj.store.log import LinesPage, read_lines

FIRST_PAGE = 1000  # a page's size after an idle spell; it doubles while pages come back full (bench scenario 13)

_Key = tuple[tuple[str, int], tuple[str, int], int]  # after, until, limit


class Undone(Exception):
    """The page committed before the one in hand was undone: the one in hand is dropped too."""


class Pipeline:
    """Reading ahead on ``reader``, committing on ``work``; ``undone(names)`` is told which projections' kept
    documents to drop when a page fails or is undone, ``committed(applied)`` of each page committed."""

    def __init__(
        self,
        reader: psycopg.Connection[Any],
        work: psycopg.Connection[Any],
        page_size: int,
        undone: Callable[[Sequence[str]], None],
        committed: Callable[[Applied], None],
    ) -> None:
        self.reader, self.work, self.page_size = reader, work, page_size
        self.undone, self.committed = undone, committed
        self.limit = min(FIRST_PAGE, page_size)
        self.ceiling = page_size  # the most a page may grow to: lower after a page was cut around a limit
        self._reads = ThreadPoolExecutor(1, thread_name_prefix="jsproj-read-ahead")
        self._commits = ThreadPoolExecutor(1, thread_name_prefix="jsproj-commit")
        self._ahead: tuple[_Key, Future[LinesPage | None]] | None = None
        self._committing: tuple[Future[Applied | None], Sequence[str]] | None = None

    def page(self, after: tuple[str, int], until: tuple[str, int]) -> LinesPage | None:
        """The page after ``after`` (up to ``until``): the one read ahead if it is that one, else read now.
        A full page grows the next and has it read ahead while this one is applied."""
        wanted = (after, until, self.limit)
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == wanted:
            page = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].result()  # one read at a time on the reading connection
            page = read_lines(self.reader, after, self.limit, until)
        if page is not None and page.count >= self.limit:
            self.limit = min(self.ceiling, self.limit * 2)
            following = (page.last, until, self.limit)
            self._ahead = (following, self._reads.submit(read_lines, self.reader, page.last, self.limit, until))
        return page

    def drop_read_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            try:
                ahead[1].result()
            except psycopg.Error:
                pass  # the reading connection is checked on the next round

    def commit(self, prepared: Prepared, kept: Sequence[str]) -> None:
        """Commit ``prepared`` on the work connection, in the committing thread (``kept``: the projections whose
        documents the sandbox keeps as of this page)."""
        self._committing = (self._commits.submit(commit, self.work, prepared), kept)

    def settled(self) -> None:
        """Wait until the page being committed is; raise :class:`Undone` if it was not."""
        pending, self._committing = self._committing, None
        if pending is None:
            return
        future, kept = pending
        try:
            applied = future.result()
        except BaseException:
            self.undone(kept)
            raise
        if applied is None:
            self.undone(kept)
            self.drop_read_ahead()
            raise Undone()
        self.committed(applied)

    def settle(self) -> None:
        """:meth:`settled`, whatever became of the page being committed."""
        try:
            self.settled()
        except Undone:
            pass

    def cut(self, count: int) -> None:
        """A page was cut around a limit after ``count`` events: read at most that many until idle."""
        self.limit = self.ceiling = max(1, count)
        self.drop_read_ahead()

    def relax(self) -> None:
        """After an idle spell: pages start small again, and may grow to the page size."""
        self.limit, self.ceiling = min(FIRST_PAGE, self.page_size), self.page_size

    def close(self) -> None:
        """Wait for the read ahead and the commit in flight (their connections go next), end the threads."""
        self.drop_read_ahead()
        try:
            self.settle()
        except (psycopg.Error, errors.JsprojError):
            pass  # the connection goes, and the page with it
        self._reads.shutdown()
        self._commits.shutdown()
