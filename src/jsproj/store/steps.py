"""Database work written once for both stores: generators of steps, run by a sync or an async driver.

An append (with the Python-engine inline projections it runs), a read or a
fetch is a generator that yields :class:`Query` steps (SQL for the store's
connection) and :class:`Call` steps (blocking work such as a sandbox call)
and receives each one's result. :func:`run` drives it on a
``psycopg.Connection``; :func:`run_async` on a ``psycopg.AsyncConnection``,
with calls in a worker thread so the event loop never waits on V8. A
database error is thrown back into the generator, which translates it the
way it would in straight-line code (so does an error of a call).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import psycopg
from psycopg.abc import Params, QueryNoTemplate
from psycopg.rows import tuple_row

from jsproj.store.translate import translate

T = TypeVar("T")


@dataclass(frozen=True)
class Query:
    """SQL to run; the generator receives its first row (``one``), every row (``all``) or None (``none``)."""

    sql: QueryNoTemplate
    params: Params | None = None
    rows: Literal["one", "all", "none"] = "one"


@dataclass(frozen=True)
class Call:
    """Blocking work outside the database (a sandbox call); the generator receives what it returns."""

    work: Callable[[], Any]


Step = Query | Call
Steps = Generator[Step, Any, T]


def _fetch(cursor: psycopg.Cursor[Any], step: Query) -> Any:
    if step.rows == "one":
        return cursor.fetchone()
    return cursor.fetchall() if step.rows == "all" else None


def run(conn: psycopg.Connection[Any], steps: Steps[T]) -> T:
    """Drive ``steps`` on a synchronous connection; returns the generator's value."""
    cursor = conn.cursor(row_factory=tuple_row)
    result: Any = None
    failure: BaseException | None = None
    while True:
        try:
            step = steps.throw(failure) if failure is not None else steps.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]  # the generator's declared return type
        result, failure = None, None
        try:
            if isinstance(step, Call):
                result = step.work()
            else:
                cursor.execute(step.sql, step.params)
                result = _fetch(cursor, step)
        except Exception as exc:  # noqa: BLE001 -- handed to the generator, which translates it or lets it go up
            failure = exc


async def run_async(conn: psycopg.AsyncConnection[Any], steps: Steps[T]) -> T:
    """Drive ``steps`` on an asyncio connection, calls in a worker thread; returns the generator's value."""
    cursor = conn.cursor(row_factory=tuple_row)
    result: Any = None
    failure: BaseException | None = None
    while True:
        try:
            step = steps.throw(failure) if failure is not None else steps.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]  # the generator's declared return type
        result, failure = None, None
        try:
            if isinstance(step, Call):
                result = await asyncio.to_thread(step.work)
            else:
                await cursor.execute(step.sql, step.params)
                if step.rows == "one":
                    result = await cursor.fetchone()
                elif step.rows == "all":
                    result = await cursor.fetchall()
        except Exception as exc:  # noqa: BLE001 -- handed to the generator, which translates it or lets it go up
            failure = exc


def ask(query: Query, where: str = "") -> Steps[Any]:
    """``query``'s result, a database error translated (:mod:`~jsproj.store.translate`), named by ``where``."""
    try:
        return (yield query)
    except psycopg.Error as exc:
        raise translate(exc, where) from exc
