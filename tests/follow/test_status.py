"""`jsproj status` tells the truth: no daemon is not "running", lag counts events (positions have gaps), and an
empty store or an async view no daemon has built says what to do."""

from __future__ import annotations

import psycopg

from clihelp import jsproj
from jsproj.follow.daemon import Daemon
from jsproj.projections.deploy import deploy
from jsproj.projections.status import hints, projection_status
from jsproj.store.sync import EventStore

TOTALS = [
    {
        "file": "Totals.js",
        "source": "projections.aggregate('Totals').by({ Deposited: function (s, e) { s.n = (s.n || 0) + 1; } }).async();",
    }
]


def status_text(dsn: str) -> str:
    done = jsproj("status", "--dsn", dsn, env={"COLUMNS": "200"})  # a wide terminal: cells on one line
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_empty_store_and_an_unbuilt_async_projection_get_hints(store: EventStore, dsn: str) -> None:
    assert "no projections are deployed here" in status_text(dsn)
    deploy(store, TOTALS)
    text = status_text(dsn)
    assert "no events yet" in text
    assert "build: no daemon" in text and "no daemon has built Totals yet" in text
    Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    store.append(stream_id="a", type="Account", events={"$type": "Deposited"})
    text = status_text(dsn)
    table = text.split("hint:")[0]
    assert "Totals" in table and "no daemon" in table and "running" not in table
    assert "Totals fall behind with no daemon running" in text
    assert "no events yet" not in text


def test_lag_counts_events_when_a_rolled_back_append_used_positions(store: EventStore, dsn: str) -> None:
    deploy(store, TOTALS)
    store.append(stream_id="a", type="Account", events={"$type": "Deposited"})
    Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    with psycopg.connect(dsn) as conn:  # two positions used, then rolled back
        conn.execute(
            """select pge_append('{"id": "b", "type": "Account", "data": [{"$type": "X"}, {"$type": "X"}]}')"""
        )
        conn.rollback()
    store.append(stream_id="a", type="Account", events={"$type": "Deposited"})
    [totals] = projection_status(store)
    assert (totals.position, totals.high_water, totals.lag_events) == (1, 4, 1)
    text = status_text(dsn)
    assert "1 event " in text and "1/4" not in text
    assert hints([totals]) == ["Totals fall behind with no daemon running: run `jsproj daemon`"]


def test_lag_in_seconds_is_measured_from_when_events_were_appended_not_their_own_timestamp(
    store: EventStore, dsn: str
) -> None:
    """Importing history (events timestamped a year ago) is not a year of lag: it is seconds behind the append."""
    from jsproj.follow.daemon.metrics import LAG_COUNT_CAP, LAG_QUERY
    from jsproj.follow.subscriptions import subscribe
    from jsproj.projections.status import subscription_status

    deploy(store, TOTALS)
    Daemon(dsn, poll_interval=0.05).run(until_caught_up=True)
    year_ago = "2025-12-01T00:00:00Z"
    store.append_all(
        [{"id": f"a{n}", "type": "Account", "timestamp": year_ago, "data": {"$type": "Deposited"}} for n in range(9)]
    )
    subscribe(store, "imports", lambda event, conn: None)  # registered, not run: 9 events behind
    [totals] = projection_status(store)
    assert totals.lag_events == 9 and totals.lag_seconds is not None
    assert 0 <= totals.lag_seconds < 60, f"{totals.lag_seconds} s: measured from the events' own timestamp"
    with psycopg.connect(dsn) as conn:
        conn.execute("select pge_add_subscription('imports', null, null, false)")
    [imports] = subscription_status(store)
    assert imports.lag_events == 9 and imports.lag_seconds is not None and imports.lag_seconds < 60
    with psycopg.connect(dsn) as conn:  # the query the daemon's metrics read the held units' lag with
        [(name, _, behind, seconds, _)] = conn.execute(LAG_QUERY, (LAG_COUNT_CAP, ["Totals"], [0])).fetchall()
    assert (name, behind) == ("Totals", 9) and 0 <= seconds < 60, f"jsproj_daemon_lag_seconds would be {seconds}"
    worker = Daemon(dsn, poll_interval=0.05)
    worker.run(until_caught_up=True)
    [totals] = projection_status(store)
    assert totals.lag_events == 0 and not totals.lag_seconds
