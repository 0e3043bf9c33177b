"""Retention per stream type, applied by the daemon: cold streams archived, old events erased, the views rebuilt.

An event's age is its ``appended_at`` (the store's clock): the tests make some events old by moving it back, as
the owner may (no message can set it).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from jsproj.errors import InputError
from jsproj.follow.daemon import Daemon
from jsproj.projections.deploy import deploy
from jsproj.projections.retention import Rule, apply_rules, clear_rule, rules, set_rule
from jsproj.projections.views import export_views
from jsproj.store.sync import EventStore

from projections import sources

COUNT = """
projections.projectStream('Sensor').named('Readings').by({
  $init: function () { return { values: [] }; },
  Read: function (s, e) { s.values.push(e.value === undefined ? 'erased' : e.value); }
});
projections.aggregate('Total').by({ Read: function (s, e) { s.sum = (s.sum || 0) + (e.value || 0); } }).async();
"""


def age(dsn: str, stream_id: str, days: int, below_version: int | None = None) -> None:
    """Move the stream's events (those below ``below_version``) ``days`` back in append time."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "update pge_events set appended_at = appended_at - make_interval(days => %s)"
            " where stream_id = %s and version < coalesce(%s, 9223372036854775807)",
            (days, stream_id, below_version),
        )


def read(stream_id: str, values: list[int]) -> dict[str, Any]:
    return {"id": stream_id, "type": "Sensor", "data": [{"$type": "Read", "value": v} for v in values]}


def test_rules_are_checked_kept_listed_and_cleared(store: EventStore) -> None:
    for bad, says in (
        (Rule("Sensor", "archive", max_count=5), "an archive rule takes max_age only"),
        (Rule("Sensor", "erase"), "needs max_age, max_count or truncate_before"),
        (Rule("Sensor", "shred", max_age=timedelta(days=1)), "archives or erases"),
        (Rule("Sensor", "erase", max_age=timedelta(0)), "longer than nothing"),
        (Rule("Sensor", "erase", truncate_before=1), "a version of 2 or more"),
    ):
        with pytest.raises(InputError, match=says):
            set_rule(store, bad)
    assert rules(store) == []
    set_rule(store, Rule("Sensor", "erase", max_count=2))
    set_rule(store, Rule("Sensor", "erase", max_age=timedelta(days=30), truncate_before=3))  # replaces it
    set_rule(store, Rule("Order", "archive", max_age=timedelta(days=365)))
    assert rules(store) == [Rule("Order", "archive", max_age=timedelta(days=365)),
                            Rule("Sensor", "erase", max_age=timedelta(days=30), truncate_before=3)]  # fmt: skip
    assert clear_rule(store, "Order") and not clear_rule(store, "Order")


def test_an_archive_rule_archives_the_streams_idle_longer_than_its_age(store: EventStore, dsn: str) -> None:
    store.append_all([read("sensor-old", [1]), read("sensor-new", [2])])
    age(dsn, "sensor-old", 400)
    set_rule(store, Rule("Sensor", "archive", max_age=timedelta(days=365)))
    [done] = apply_rules(store)
    assert (done.streams, done.events) == (1, 0)
    assert {e.stream_id for e in store.read_all()} == {"sensor-new"}
    assert store.fetch_stream("sensor-old", include_archived=True).archived
    assert apply_rules(store)[0].streams == 0, "archived already: nothing more"


def test_the_daemon_erases_what_an_erase_rule_says_and_rebuilds_the_views(
    store: EventStore, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    deploy(store, sources(Count=COUNT))
    store.append_all([read("sensor-1", [1, 2, 3, 4, 5]), read("sensor-2", [10, 20])])
    age(dsn, "sensor-2", 60, below_version=2)  # sensor-2's first reading is 60 days old
    set_rule(store, Rule("Sensor", "erase", max_age=timedelta(days=30), max_count=3))
    caplog.set_level(logging.INFO, logger="jsproj")
    worker = Daemon(dsn, retention=lambda: apply_rules(store, wait=False), retention_interval=3600)
    worker.run(until_caught_up=True)  # its first round applies the rules, then it builds what they reset
    assert "retention of Sensor: 0 streams archived, 3 events erased" in caplog.text
    views = export_views(store)
    assert views["views"]["Readings"] == {"sensor-1": {"values": ["erased", "erased", 3, 4, 5]},
                                          "sensor-2": {"values": ["erased", 20]}}  # fmt: skip
    assert views["aggregates"]["Total"] == {"sum": 3 + 4 + 5 + 20}
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select reason from pge_erasures").fetchall() == [
            ("retention of Sensor streams (older than 30d, more than 3 behind the last)",)
        ]
    worker = Daemon(dsn, retention=lambda: apply_rules(store, wait=False), retention_interval=3600)
    worker.run(until_caught_up=True)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from pge_erasures").fetchone() == (1,), "nothing left to erase"
