"""Subscribers that tests/follow/test_subscriptions.py runs in processes of their own (``jsproj subscribers
subscriber_app:NAME`` with tests/follow/ as the working directory), and a plain function that is not one."""

from __future__ import annotations

import os
from typing import Any

import psycopg

from jsproj.follow.subscriptions import subscriber
from jsproj.store.sync import RecordedEvent


def effect(event: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
    """The handler's write, through the connection (exactly once), and an outside effect (at least once)."""
    conn.execute("insert into effects (event_id, position, pid) values (%s, %s, %s)",
                 (event.event_id, event.position, os.getpid()))  # fmt: skip
    outside = os.environ.get("SUBSCRIBER_OUTSIDE")
    if outside:
        with open(outside, "a", encoding="utf-8") as file:
            file.write(event.event_id + "\n")


@subscriber("slow", page_size=50)
def slow(event: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
    conn.execute("select pg_sleep(0.004)")  # pages of ~0.2 s, so that a kill lands inside one
    effect(event, conn)


@subscriber("quick")
def quick(event: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
    effect(event, conn)


def not_decorated(event: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
    effect(event, conn)


@subscriber("refusing")
def refusing(event: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
    raise ValueError(f"refused {event.type}")
