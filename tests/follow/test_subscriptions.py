"""Python subscribers against a real PostgreSQL and real processes: in order, exactly once with their writes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from clihelp import JSPROJ, jsproj
from jsproj.errors import InvalidNameError, SubscriberImportError, SubscriptionStoppedError
from jsproj.follow.subscriptions import load_subscribers, subscribe
from jsproj.projections.deploy import deploy
from jsproj.projections.status import subscription_status
from jsproj.store.sync import EventStore, RecordedEvent

from waiting import wait_until

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def effects(dsn: str) -> str:
    """The table the handlers write (a row per call that committed), in the test's database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""create table effects (n bigint generated always as identity, event_id uuid not null,
                        position bigint not null, pid int not null)""")  # fmt: skip
    return dsn


def append(store: EventStore, count: int, start: int = 0, stream_type: str = "Account") -> None:
    store.append_all(
        {"id": f"{stream_type.lower()}-{n % 7}", "type": stream_type,
         "data": {"$type": "Deposited" if n % 3 else "Withdrawn", "n": n}}
        for n in range(start, start + count)
    )  # fmt: skip


def log_order(store: EventStore) -> list[str]:
    """Every event id in the order readers see (read_all's)."""
    ids: list[str] = []
    after = 0
    while page := store.read_all(after=after):
        ids += [e.event_id for e in page]
        after = page[-1].position
    return ids


def handled(dsn: str) -> list[str]:
    """The event ids the handlers' committed writes name, in the order they were written."""
    with psycopg.connect(dsn) as conn:
        return [str(r[0]) for r in conn.execute("select event_id from effects order by n").fetchall()]


def row(dsn: str, name: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "select status, last_position, events, error from pge_subscriptions where name = %s", (name,)
        ).fetchone()
    assert found is not None, name
    return dict(zip(("status", "position", "events", "error"), found, strict=True))


def checkpoint(dsn: str, name: str) -> int | None:
    """Where subscription ``name`` is (None: not registered yet)."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute("select last_position from pge_subscriptions where name = %s", (name,)).fetchone()
    return found[0] if found else None


def writing(event: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
    conn.execute("insert into effects (event_id, position, pid) values (%s, %s, %s)",
                 (event.event_id, event.position, os.getpid()))  # fmt: skip


def runner_process(dsn: str, target: str, *args: str, outside: Path | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSPROJ_")}
    if outside is not None:
        env["SUBSCRIBER_OUTSIDE"] = str(outside)
    return subprocess.Popen(
        [str(JSPROJ), "subscribers", target, "--dsn", dsn, "--poll-interval", "0.05", *args],
        cwd=TESTS, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def runners(dsn: str, name: str) -> int:
    """The connections of runners of subscription ``name`` (holding its lock, or waiting for it)."""
    with psycopg.connect(dsn) as conn:
        query = "select count(*) from pg_stat_activity where application_name = %s and datname = current_database()"
        return int(conn.execute(query, (f"jsproj subscriber {name}",)).fetchone()[0])


def killed(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.parametrize("transaction", ["page", "event"])
def test_events_are_handled_in_the_read_order_once_each_with_the_writes_and_checkpoint_together(
    store: EventStore, effects: str, transaction: str
) -> None:
    append(store, 250)
    subscription = subscribe(store, "ledger", writing, page_size=40, transaction=transaction)  # type: ignore[arg-type]
    assert subscription.run(until_caught_up=True) is True
    assert handled(effects) == log_order(store)
    assert row(effects, "ledger") == {"status": "running", "position": 250, "events": 250, "error": None}
    append(store, 10, start=250)
    assert subscription.run(until_caught_up=True) is True
    assert handled(effects) == log_order(store), "the next run goes on from the checkpoint"
    assert row(effects, "ledger")["events"] == 260


@pytest.mark.slow  # a subscriber process killed midway
def test_kill_minus_nine_mid_stream_then_a_restart_writes_every_effect_exactly_once(
    store: EventStore, effects: str, tmp_path: Path
) -> None:
    append(store, 600)
    outside = tmp_path / "outside.txt"
    first = runner_process(effects, "subscriber_app:slow", outside=outside)
    try:
        wait_until(lambda: 0 < (checkpoint(effects, "slow") or 0) < 400)
    finally:
        killed(first)
    done_before = handled(effects)
    assert 0 < len(done_before) < 600, "killed mid-stream"
    assert done_before == log_order(store)[: len(done_before)], "what committed is a prefix of the log"
    second = subprocess.run(
        [str(JSPROJ), "subscribers", "subscriber_app:slow", "--dsn", effects, "--until-caught-up"],
        cwd=TESTS, env={**os.environ, "SUBSCRIBER_OUTSIDE": str(outside)}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert handled(effects) == log_order(store), "every event's effect exactly once, in order, no gap"
    # Outside the transaction: at least once -- the page the kill interrupted is handed over again.
    seen = outside.read_text().split()
    assert set(seen) == set(log_order(store))
    assert len(seen) >= 600


@pytest.mark.parametrize("transaction", ["page", "event"])
def test_a_handler_error_stops_at_the_failing_event_visibly_and_the_next_run_tries_it_again(
    store: EventStore, effects: str, transaction: str
) -> None:
    append(store, 30)
    poison = log_order(store)[16]
    broken = True

    def handler(event: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        writing(event, conn)  # undone with the event's savepoint when it raises
        if event.event_id == poison and broken:
            raise ValueError("no account for this deposit")

    subscription = subscribe(store, "mailer", handler, page_size=10, transaction=transaction)  # type: ignore[arg-type]
    with pytest.raises(SubscriptionStoppedError) as caught:
        subscription.run(until_caught_up=True)
    assert caught.value.subscription == "mailer" and caught.value.position == 17
    assert str(caught.value).startswith("subscription mailer stopped at event 17 (")
    assert str(caught.value).endswith(": ValueError: no account for this deposit")
    assert handled(effects) == log_order(store)[:16], "the events before it committed, nothing of it"
    stopped = row(effects, "mailer")
    assert (stopped["status"], stopped["position"]) == ("stopped", 16)
    assert stopped["error"]["eventId"] == poison and "ValueError" in stopped["error"]["traceback"]
    (status,) = subscription_status(store)
    assert (status.kind, status.status, status.lag_events, status.error["message"]) == (
        "subscription", "stopped", 14, "no account for this deposit",
    )  # fmt: skip
    shown = jsproj("status", "--dsn", effects, "--json")
    assert [s["status"] for s in json.loads(shown.stdout) if s["kind"] == "subscription"] == ["stopped"]
    retried = jsproj("retry", "mailer", "--dsn", effects)
    assert (
        retried.returncode == 1
        and "'mailer' is a subscription, not a projection: a stopped subscription tries "
        "its event again when its subscriber runs again"
        in retried.stderr
    ), retried.stderr
    broken = False
    assert subscription.run(until_caught_up=True) is True
    assert handled(effects) == log_order(store)
    assert row(effects, "mailer") == {"status": "running", "position": 30, "events": 30, "error": None}


def test_on_error_retry_calls_the_handler_again_until_it_passes(store: EventStore, effects: str) -> None:
    append(store, 12)
    calls: list[int] = []

    def flaky(event: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        calls.append(event.position)
        if event.position == 5 and calls.count(5) < 3:
            raise ConnectionRefusedError("the mail server is down")
        writing(event, conn)

    subscription = subscribe(store, "flaky", flaky, on_error="retry", page_size=4)
    assert subscription.run(until_caught_up=True) is True
    assert calls.count(5) == 3 and handled(effects) == log_order(store)
    assert row(effects, "flaky")["error"] is None, "cleared once the checkpoint moved past it"


def test_filters_by_event_type_and_stream_type_and_the_checkpoint_passes_the_rest(
    store: EventStore, effects: str
) -> None:
    append(store, 40)
    append(store, 40, start=40, stream_type="Loan")
    append(store, 5, start=80)
    seen: dict[str, list[int]] = {"types": [], "streams": [], "both": []}

    def keep(key: str) -> Callable[[RecordedEvent, psycopg.Connection[Any]], None]:
        return lambda event, conn: seen[key].append(event.position)

    events = {e.position: e for e in store.read_all(limit=1000)}
    subscribe(store, "types", keep("types"), event_types=["Withdrawn"], page_size=3).run(until_caught_up=True)
    subscribe(store, "streams", keep("streams"), stream_types="Loan", page_size=7).run(until_caught_up=True)
    subscribe(store, "both", keep("both"), event_types=["Withdrawn"], stream_types=["Loan"]).run(until_caught_up=True)
    assert seen["types"] == [p for p, e in events.items() if e.type == "Withdrawn"]
    assert seen["streams"] == [p for p, e in events.items() if e.stream_type == "Loan"]
    assert seen["both"] == [p for p, e in events.items() if e.type == "Withdrawn" and e.stream_type == "Loan"]
    for name in seen:
        assert row(effects, name)["position"] == 85, "past the events it does not want"
        assert row(effects, name)["events"] == len(seen[name])
    assert {s.name: s.lag_events for s in subscription_status(store)} == {"both": 0, "streams": 0, "types": 0}
    with pytest.raises(ValueError, match="event_types and stream_types"):
        subscribe(store, "none", keep("both"), event_types=[])


def test_two_runners_one_works_and_the_other_takes_over_when_it_is_killed(store: EventStore, effects: str) -> None:
    first = runner_process(effects, "subscriber_app:quick")
    second: subprocess.Popen[str] | None = None
    try:
        wait_until(lambda: [s.holder for s in subscription_status(store)] == ["quick"])
        second = runner_process(effects, "subscriber_app:quick")
        wait_until(lambda: runners(effects, "quick") == 2)  # the second waits for the lock
        append(store, 50)
        wait_until(lambda: len(handled(effects)) == 50)
        with psycopg.connect(effects) as conn:
            assert conn.execute("select array_agg(distinct pid) from effects").fetchone()[0] == [first.pid]
        killed(first)
        append(store, 50, start=50)
        wait_until(lambda: len(handled(effects)) == 100)
        with psycopg.connect(effects) as conn:
            pids = conn.execute("select pid, count(*) from effects group by pid order by min(n)").fetchall()
        assert pids == [(first.pid, 50), (second.pid, 50)], "the survivor took over, nothing doubled"
        assert handled(effects) == log_order(store)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                killed(process)


def test_events_of_concurrent_writers_arrive_in_the_gap_safe_order_and_none_is_lost(
    store: EventStore, effects: str, dsn: str
) -> None:
    delivered: list[str] = []
    subscription = subscribe(store, "follower", lambda e, conn: delivered.append(e.event_id), poll_interval=0.05)
    subscription.start()
    try:
        wait_until(lambda: checkpoint(dsn, "follower") is not None)
        slow = psycopg.connect(dsn)  # takes a position and stays open while later ones commit
        slow.execute("select pge_append(%s)", (Jsonb({"id": "late", "type": "T", "data": {"$type": "Late"}}),))
        errors: list[BaseException] = []

        def writer(number: int) -> None:
            try:
                for n in range(40):
                    store.append(stream_id=f"w{number}-{n % 3}", type="W", events=[{"$type": "Wrote", "n": n}] * 2)
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert delivered == [], "nothing passes the open transaction"
        slow.commit()
        slow.close()
        wait_until(lambda: len(delivered) >= 321)
    finally:
        subscription.stop()
    assert delivered == log_order(store) and len(delivered) == 321


def test_subscribing_wakes_on_the_notify_trigger_and_a_deploy_keeps_it(store: EventStore, dsn: str) -> None:
    def trigger() -> bool:
        with psycopg.connect(dsn) as conn:
            found = conn.execute("select from pg_trigger where tgname = 'pge_events_notify'").fetchone()
            return found is not None

    assert not trigger(), "no async projection, no subscription: appends notify no one"
    subscribe(store, "any", lambda e, conn: None).run(until_caught_up=True)
    assert trigger()
    deploy(store, [{"file": "Count.js", "source": "projections.aggregate('Count').by({ $any: function (s) {} });"}])
    assert trigger(), "pge_deploy keeps it while subscriptions exist"


def test_bad_names_and_targets_are_specific_errors(store: EventStore) -> None:
    with pytest.raises(InvalidNameError, match="subscription name 'a b'"):
        subscribe(store, "a b", lambda e, conn: None)
    with pytest.raises(SubscriberImportError, match="cannot import 'no_such_module'"):
        load_subscribers(["no_such_module:x"], path=str(TESTS))
    with pytest.raises(SubscriberImportError, match="is not a subscriber: decorate it"):
        load_subscribers(["subscriber_app:not_decorated"], path=str(TESTS))
    assert [s.name for s in load_subscribers(["subscriber_app"], path=str(TESTS))] == ["slow", "quick", "refusing"]
    done = jsproj("subscribers", "subscriber_app:nothing", cwd=TESTS)
    assert done.returncode == 1 and "has no attribute 'nothing'" in done.stderr


def test_jsproj_subscribers_logs_lines_with_time_and_level_and_json_lines_name_the_subscription(
    store: EventStore,
) -> None:
    append(store, 3)
    text = jsproj("subscribers", "subscriber_app:refusing", "--dsn", store.dsn, "--until-caught-up", cwd=TESTS)
    assert text.returncode == 1
    lines = text.stderr.splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00 (INFO|WARNING|ERROR) jsproj\.", line)
                         for line in lines), text.stderr  # fmt: skip
    assert any(" ERROR jsproj.subscribers: refusing: subscription refusing stopped at event 1 " in line
               for line in lines), text.stderr  # fmt: skip
    json_run = jsproj("--log-format", "json", "subscribers", "subscriber_app:refusing", "--dsn", store.dsn,
                      "--until-caught-up", cwd=TESTS)  # fmt: skip
    entries = [json.loads(line) for line in json_run.stderr.splitlines()]
    [error] = [e for e in entries if e["level"] == "ERROR"]
    assert (error["subscription"], error["logger"], error["schema"]) == ("refusing", "jsproj.subscribers", "public")
    assert "ValueError: refused" in error["message"]


def test_start_end_skips_what_is_already_there(store: EventStore) -> None:
    append(store, 5)
    seen: list[int] = []
    subscription = subscribe(store, "new-only", lambda e, conn: seen.append(e.position), start="end")
    assert subscription.run(until_caught_up=True) and seen == []
    append(store, 2, start=5)
    assert subscription.run(until_caught_up=True) and seen == [6, 7]


def test_a_handler_statement_timing_out_is_the_handlers_failure_not_a_lost_connection(
    store: EventStore, dsn: str
) -> None:
    append(store, 3)

    def slow(event: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        conn.execute("set local statement_timeout = 20")
        conn.execute("select pg_sleep(1)")  # QueryCanceled: an OperationalError, with the connection fine

    with pytest.raises(SubscriptionStoppedError, match="QueryCanceled"):
        subscribe(store, "slow", slow, poll_interval=0.05).run(until_caught_up=True)
    assert row(dsn, "slow")["status"] == "stopped"
    assert row(dsn, "slow")["error"]["kind"] == "QueryCanceled"


def test_subscriptions_of_one_name_in_two_schemas_each_have_their_runner(dsn: str) -> None:
    with EventStore(dsn, schema="shop_a") as a, EventStore(dsn, schema="shop_b") as b:
        a.migrate()
        b.migrate()
        append(a, 2)
        append(b, 3)
        seen: dict[str, int] = {"a": 0, "b": 0}
        first = subscribe(a, "same", lambda e, c: seen.__setitem__("a", seen["a"] + 1), poll_interval=0.05).start()
        try:
            wait_until(lambda: seen["a"] == 2)
            done: list[bool] = []
            other = threading.Thread(
                target=lambda: done.append(
                    subscribe(b, "same", lambda e, c: seen.__setitem__("b", seen["b"] + 1), poll_interval=0.05).run(
                        until_caught_up=True
                    )
                ),
                daemon=True,
            )
            other.start()
            wait_until(lambda: done == [True], deadline=30)  # not waiting for shop_a's runner to go
        finally:
            first.stop()
        assert seen == {"a": 2, "b": 3}
