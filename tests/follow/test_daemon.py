"""The async daemon against a real PostgreSQL: exactly once, gap-safe, crash-proof."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
from psycopg.types.json import Jsonb

from clihelp import JSPROJ, Done, jsproj
from jsproj import simulate
from jsproj.engine.projections import Projections
from jsproj.follow.daemon import STALE_SECONDS, Daemon, ProjectionStoppedError
from jsproj.projections.deploy import deploy
from jsproj.projections.status import WaitTimeoutError, projection_status, wait_for_projections
from jsproj.projections.views import export_views, fetch_view
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import temporary_cluster

from projections import COUNTERS, SLOW, sources
from waiting import daemon_thread, wait_until


def append_accounts(store: EventStore, count: int, streams: int = 10, start: int = 0) -> None:
    for n in range(start, start + count):
        event = {"$type": "Withdrawn" if n % 4 == 3 else "Deposited", "amount": n % 7}
        store.append({"id": f"acc-{n % streams}", "type": "Account", "data": event})


def from_scratch(store: EventStore, files: list[dict[str, str]]) -> dict:
    """A fold of every stored event, from scratch, by the Python host (simulation)."""
    messages = [
        {
            "id": e.stream_id,
            "type": e.stream_type,
            "data": e.event,
            "timestamp": e.to_dict()["timestamp"],
            "metadata": e.metadata,
        }
        for e in read_everything(store)
    ]
    with Projections(files) as loaded:
        return dict(simulate(loaded, messages))


def read_everything(store: EventStore) -> list:
    events, after = [], 0
    while page := store.read_all(after=after, limit=1000):
        events += page
        after = page[-1].position
    return events


def stored(store: EventStore, files: list[dict[str, str]]) -> dict:
    """The stored views of the projections in ``files``."""
    exported = export_views(store)
    with Projections(files) as loaded:
        names = set(loaded.names)
    return {"views": {k: v for k, v in exported["views"].items() if k in names},
            "aggregates": {k: v for k, v in exported["aggregates"].items() if k in names}}  # fmt: skip


def same_as_from_scratch(store: EventStore, files: list[dict[str, str]]) -> None:
    """Assert the stored views equal a fold of every stored event from scratch."""
    have = stored(store, files)
    want = from_scratch(store, files)
    for kind in ("views", "aggregates"):
        assert have[kind] == {name: want[kind][name] for name in have[kind]}, kind


def succeeded(*args: str, env: dict[str, str] | None = None) -> Done:
    """``jsproj ARGS`` in-process, asserted to exit with 0."""
    done = jsproj(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done


def daemon_process(dsn: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(JSPROJ), "daemon", "--dsn", dsn, "--poll-interval", "0.05", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def progress(dsn: str, name: str) -> tuple[str, int, int]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select status, last_position, events from pge_projection_progress where name = %s", (name,)
        ).fetchone()


@contextmanager
def appending_meanwhile(store: EventStore, start: int) -> Iterator[None]:
    """Accounts appended five at a time from ``start`` on, in a thread, while the block runs."""
    done = threading.Event()

    def keep_appending() -> None:
        n = start
        while not done.is_set():
            append_accounts(store, 5, start=n)
            n += 5

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        yield
    finally:
        done.set()
        writer.join()


def test_async_projections_catch_up_and_match_a_fold_from_scratch(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    append_accounts(store, 150)
    report = deploy(store, files, lifecycles={"Balance": "async", "Totals": "async", "ByAmount": "async"})
    assert sorted(report.building) == ["Balance", "ByAmount", "Totals"]
    append_accounts(store, 50, start=150)
    Daemon(dsn, page_size=7).run(until_caught_up=True)
    same_as_from_scratch(store, files)
    assert {s.name: (s.status, s.lag_events) for s in projection_status(store)} == {
        "Balance": ("running", 0),
        "ByAmount": ("running", 0),
        "Totals": ("running", 0),
    }
    with daemon_thread(dsn):
        append_accounts(store, 40, start=200)
        wait_for_projections(store, timeout=60)
        same_as_from_scratch(store, files)
        assert fetch_view(store, "Totals") == {"Totals": {"events": 240, "sum": sum(n % 7 for n in range(240))}}


def test_wait_for_projections_times_out_without_a_daemon(store: EventStore) -> None:
    deploy(store, sources(Counters=COUNTERS), lifecycles={"Totals": "async"})
    append_accounts(store, 5)
    with pytest.raises(WaitTimeoutError, match="Totals"):
        wait_for_projections(store, timeout=0.3)


@pytest.mark.slow  # a daemon process killed or stopped midway
@pytest.mark.parametrize("phase", ["build", "running"])
def test_kill_minus_nine_in_the_middle_of_a_page_loses_and_doubles_nothing(
    store: EventStore, dsn: str, phase: str
) -> None:
    files = sources(Slow=SLOW, Counters=COUNTERS)
    deploy(store, files, lifecycles={"Slow": "async", "Totals": "async", "Balance": "live", "ByAmount": "live"})
    if phase == "running":  # built first: the kill lands while pages are applied one by one
        append_accounts(store, 10)
        Daemon(dsn).run(until_caught_up=True)
    append_accounts(store, 600, start=10)
    # Pages of 10 slow events (~20 ms): a build writes its staging table every 20 pages.
    first = daemon_process(dsn, "--page-size", "10" if phase == "build" else "100")
    try:
        if phase == "build":  # a build in progress: documents in the sandbox, some written to the staging table
            wait_until(lambda: progress(dsn, "Slow")[0] == "build" and progress(dsn, "Slow")[2] > 0)
        else:
            wait_until(lambda: progress(dsn, "Slow")[1] > 10)
        first.send_signal(signal.SIGKILL)  # a page of 100 slow events takes ~0.2 s: this lands inside one
    finally:
        first.wait(timeout=30)
    total = 610 if phase == "running" else 600
    assert progress(dsn, "Slow")[1] < 610, "killed before it was done"
    # The dead daemon's heartbeat ages as STALE_SECONDS would age it: the next daemon then takes every
    # projection at once instead of sharing them with a ghost for half a minute.
    with psycopg.connect(dsn, autocommit=True) as conn:
        aged = conn.execute("update pge_daemons set heartbeat_at = now() - make_interval(secs => %s) where pid = %s",
                            (STALE_SECONDS + 1, first.pid)).rowcount  # fmt: skip
    assert aged == 1, "the killed daemon left its row behind"
    second = jsproj("daemon", "--dsn", dsn, "--until-caught-up", "--poll-interval", "0.05")
    assert second.returncode == 0, second.stderr
    same_as_from_scratch(store, files)
    assert fetch_view(store, "Slow") == {"Slow": {"n": total}}


@pytest.mark.slow  # a daemon process killed or stopped midway
def test_two_daemons_share_the_work_and_never_double_apply(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS, Slow=SLOW)
    deploy(store, files, lifecycles={"Balance": "async", "Totals": "async", "ByAmount": "async", "Slow": "async"})
    daemons = [daemon_process(dsn, "--page-size", "25"), daemon_process(dsn, "--page-size", "25")]
    try:

        def two_each() -> bool:
            holders = [s.holder for s in projection_status(store) if s.lifecycle == "async"]
            return None not in holders and sorted(holders.count(h) for h in set(holders)) == [2, 2]

        wait_until(two_each)  # the daemons balance the four projections: two each
        with ThreadPoolExecutor(3) as pool:  # .result() raises what a writer raised
            for writing in [pool.submit(append_accounts, store, 100, 10, k * 100) for k in range(3)]:
                writing.result()
        wait_for_projections(store, timeout=120)
        same_as_from_scratch(store, files)
        assert fetch_view(store, "Slow") == {"Slow": {"n": 300}}
    finally:
        for process in daemons:
            process.send_signal(signal.SIGTERM)
        for process in daemons:
            assert process.wait(timeout=30) == 0


def test_the_slow_transaction_gap_never_loses_the_late_event(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles={"Totals": "async", "Balance": "async", "ByAmount": "async"})
    append_accounts(store, 10)
    with daemon_thread(dsn):
        wait_for_projections(store, timeout=60)
        slow = psycopg.connect(dsn)  # takes a position and stays open
        try:
            slow.execute(
                "select pge_append(%s)",
                (Jsonb({"id": "late", "type": "Account", "data": {"$type": "Deposited", "amount": 1000}}),),
            )
            append_accounts(store, 5, start=10)  # commits later positions
            with pytest.raises(WaitTimeoutError):
                wait_for_projections(store, timeout=1.0)  # the daemon must not pass the open transaction
            assert fetch_view(store, "Totals")["Totals"]["events"] == 10
            slow.commit()
        finally:
            slow.close()
        wait_for_projections(store, timeout=60)
    assert fetch_view(store, "Totals")["Totals"]["events"] == 16
    same_as_from_scratch(store, files)


def test_a_rebuild_under_concurrent_appends_ends_equal_to_a_fold_from_scratch(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles={"Balance": "async", "Totals": "async", "ByAmount": "async"})
    append_accounts(store, 300)
    Daemon(dsn).run(until_caught_up=True)
    with appending_meanwhile(store, start=300):
        for name in ("Totals", "Balance", "ByAmount"):
            rebuilt = jsproj("rebuild", name, "--dsn", dsn, "--json", "--page-size", "50")
            assert rebuilt.returncode == 0, rebuilt.stderr
            assert json.loads(rebuilt.stdout)["events"] >= 300
    Daemon(dsn).run(until_caught_up=True)
    same_as_from_scratch(store, files)


def test_readers_see_the_old_view_until_a_rebuild_is_swapped_in(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles={"Totals": "async"})
    append_accounts(store, 20)
    Daemon(dsn).run(until_caught_up=True)
    changed = COUNTERS.replace("s.events += 1;", "s.events += 100;")
    deploy(store, sources(Counters=changed), lifecycles={"Totals": "async"})
    assert fetch_view(store, "Totals") == {"Totals": {"events": 20, "sum": sum(n % 7 for n in range(20))}}, "old view"
    assert progress(dsn, "Totals")[0] == "build"
    Daemon(dsn).run(until_caught_up=True)
    assert fetch_view(store, "Totals")["Totals"]["events"] == 2000


@pytest.mark.slow  # a daemon process killed or stopped midway
def test_a_projection_stopped_during_its_build_resumes_by_building_again(store: EventStore, dsn: str) -> None:
    """retry after a build stopped (here on a time limit) must not fold the log again on top of old documents."""
    deploy(store, sources(Counters=COUNTERS), lifecycles={"Balance": "async"})
    append_accounts(store, 40)
    Daemon(dsn).run(until_caught_up=True)
    # A handler an order of magnitude past the limit the daemon stops with, loading the file an order of
    # magnitude below it: neither depends on the machine's speed (with 0.005 s, a loaded machine's load of the
    # file hit the limit, and the daemon retried it for as long as it did).
    heavy = COUNTERS.replace(
        "Withdrawn: function (s, e) {", "Withdrawn: function (s, e) { for (var i = 0; i < 1e8; i++) {}"
    )
    files = sources(Counters=heavy)
    deploy(store, files, lifecycles={"Balance": "async"})
    with pytest.raises(ProjectionStoppedError, match="Balance"):
        Daemon(dsn, timeout=0.05).run(until_caught_up=True)
    assert progress(dsn, "Balance")[0] == "stopped"
    resumed = json.loads(succeeded("retry", "Balance", "--dsn", dsn, "--json").stdout)
    assert resumed["resumed"] is True
    assert progress(dsn, "Balance")[0] == "build", "no progress to resume from: it builds again"
    Daemon(dsn).run(until_caught_up=True)
    same_as_from_scratch(store, files)
    assert fetch_view(store, "Balance", "acc-0")["moves"] == 4


POISON = """
projections.projectStream('Ticket').named('Tickets').by({
  $init: function () { return { open: false, notes: [] }; },
  Opened: function (s) { s.open = true; },
  Noted: function (s, e) {
    if (!s.open) throw new Error('ticket is not open');
    s.notes.push(e.text);
  }
});
"""


def test_a_poison_event_is_dead_lettered_and_the_projection_goes_on(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Poison=POISON), lifecycles={"Tickets": "async"}, on_error={"Tickets": "dead-letter"})
    store.append({"id": "t1", "type": "Ticket", "data": [{"$type": "Noted", "text": "early"}, {"$type": "Opened"}]})
    store.append({"id": "t1", "data": {"$type": "Noted", "text": "later"}})
    store.append({"id": "t2", "type": "Ticket", "data": [{"$type": "Opened"}, {"$type": "Noted", "text": "fine"}]})
    Daemon(dsn, page_size=2).run(until_caught_up=True)
    assert fetch_view(store, "Tickets") == {
        "t1": {"open": True, "notes": ["later"]},
        "t2": {"open": True, "notes": ["fine"]},
    }
    letters = json.loads(succeeded("dead-letters", "--dsn", dsn, "--json").stdout)
    assert [(d["projection"], d["position"], d["eventType"], d["streamId"]) for d in letters] == [
        ("Tickets", 1, "Noted", "t1")
    ]
    assert letters[0]["error"]["error"] == {"name": "Error", "message": "ticket is not open"}
    assert "Poison.js:6:" in letters[0]["error"]["stack"]
    assert [s.dead_letters for s in projection_status(store)] == [1]
    # Retried now that the ticket is open, the note applies (after the later one).
    retried = json.loads(succeeded("retry", "Tickets", "--dsn", dsn, "--json").stdout)
    assert retried == {"projection": "Tickets", "resumed": False, "deadLetters": 1, "applied": 1}
    assert fetch_view(store, "Tickets", "t1") == {"open": True, "notes": ["later", "early"]}


def test_many_dead_letters_show_grouped_and_bounded_and_every_one_on_asking(
    store: EventStore, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    deploy(store, sources(Poison=POISON), lifecycles={"Tickets": "async"}, on_error={"Tickets": "dead-letter"})
    notes = [{"$type": "Noted", "text": f"n{n}"} for n in range(250)]
    store.append_all([{"id": f"t{n % 50}", "type": "Ticket", "data": notes[n]} for n in range(250)])
    caplog.set_level(logging.WARNING, logger="jsproj.daemon")
    Daemon(dsn).run(until_caught_up=True)
    said = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert sum(int(re.search(r"Tickets skipped (\d+) event", m).group(1)) for m in said) == 250, "the log says so"
    grouped = succeeded("dead-letters", "--dsn", dsn, env={"COLUMNS": "200"})
    lines = grouped.stdout.splitlines()
    assert len(lines) < 12, "one row per projection and error, however many letters"
    assert "dead letters (250) by projection and error" in lines[0]
    assert any("Tickets" in line and " 250 " in line and "1-250" in line for line in lines), grouped.stdout
    assert any("ticket is not open" in line for line in lines), "the cause, not cut before it"
    listed = succeeded("dead-letters", "--dsn", dsn, "--list", env={"COLUMNS": "200"})
    assert "dead letters (250), the first 100" in listed.stdout
    assert listed.stdout.count("│ Tickets ") == 100 and "ticket is not open" in listed.stdout
    few = succeeded("dead-letters", "--dsn", dsn, "--list", "--limit", "3", env={"COLUMNS": "200"})
    assert few.stdout.count("│ Tickets ") == 3 and "the first 3" in few.stdout
    assert len(json.loads(succeeded("dead-letters", "--dsn", dsn, "--json").stdout)) == 250, "--json: every one"
    assert len(json.loads(succeeded("dead-letters", "--dsn", dsn, "--json", "--limit", "7").stdout)) == 7


def test_a_poison_event_stops_the_projection_when_that_is_its_policy(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Poison=POISON), lifecycles={"Tickets": "async"})  # the default policy: stop
    store.append({"id": "t1", "type": "Ticket", "data": [{"$type": "Opened"}, {"$type": "Noted", "text": "a"}]})
    Daemon(dsn).run(until_caught_up=True)
    store.append({"id": "t2", "type": "Ticket", "data": [{"$type": "Noted", "text": "too early"}, {"$type": "Opened"}]})
    with pytest.raises(ProjectionStoppedError, match="Tickets stopped on an event"):
        Daemon(dsn, page_size=1).run(until_caught_up=True)
    status, position, _ = progress(dsn, "Tickets")
    assert (status, position) == ("stopped", 2), (
        "stopped on the poison event (position 3), with everything before it applied"
    )
    [state] = [s for s in projection_status(store) if s.name == "Tickets"]
    assert state.error["message"].startswith("projection Tickets failed on Noted event")
    with pytest.raises(ProjectionStoppedError):
        wait_for_projections(store, timeout=5)
    fixed = POISON.replace("if (!s.open) throw new Error('ticket is not open');", "")
    deploy(store, sources(Poison=fixed), lifecycles={"Tickets": "async"})  # changed: rebuilt by the daemon
    Daemon(dsn).run(until_caught_up=True)
    assert fetch_view(store, "Tickets", "t2") == {"open": True, "notes": ["too early"]}


def test_a_rebuild_that_stops_on_a_poison_event_fails_the_command(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Poison=POISON), lifecycles={"Tickets": "async"})
    store.append({"id": "t1", "type": "Ticket", "data": [{"$type": "Noted", "text": "too early"}]})
    rebuilt = jsproj("rebuild", "Tickets", "--dsn", dsn, "--json")
    assert rebuilt.returncode != 0
    assert json.loads(rebuilt.stdout)["error"]["message"].startswith("Tickets stopped during its rebuild")
    assert progress(dsn, "Tickets")[0] == "stopped"


@pytest.mark.slow
@pytest.mark.server
def test_the_daemon_rides_out_a_postgresql_restart() -> None:
    cluster = temporary_cluster()
    cluster.init(durable=False)
    cluster.start()
    try:
        files = sources(Counters=COUNTERS)
        with EventStore(cluster.dsn) as store:
            store.migrate()
            deploy(store, files, lifecycles={"Totals": "async", "Balance": "async"})
            append_accounts(store, 50)
        with daemon_thread(cluster.dsn) as worker:
            with EventStore(cluster.dsn) as store:
                wait_for_projections(store, timeout=60)
            cluster.stop()
            cluster.start()
            with EventStore(cluster.dsn) as store:
                append_accounts(store, 50, start=50)
                wait_for_projections(store, timeout=60)
                assert fetch_view(store, "Totals")["Totals"]["events"] == 100
                same_as_from_scratch(store, files)
            assert worker.held, "it holds its projections again"
    finally:
        cluster.destroy()


@pytest.mark.slow  # a daemon process killed or stopped midway
def test_sigterm_finishes_the_page_and_exits_cleanly(store: EventStore, dsn: str) -> None:
    files = sources(Slow=SLOW)
    deploy(store, files, lifecycles={"Slow": "async"})
    append_accounts(store, 400)
    process = daemon_process(dsn, "--page-size", "100")
    wait_until(lambda: progress(dsn, "Slow")[1] > 0)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    _, stderr = process.communicate()
    assert "stopped" in stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from pge_daemons").fetchone()[0] == 0, "it signed out"
    Daemon(dsn).run(until_caught_up=True)
    assert fetch_view(store, "Slow") == {"Slow": {"n": 400}}


def test_only_the_chosen_projections(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Counters=COUNTERS), lifecycles={"Totals": "async", "Balance": "async"})
    append_accounts(store, 10)
    Daemon(dsn, names=["Totals"]).run(until_caught_up=True)
    assert progress(dsn, "Totals")[0] == "running"
    assert progress(dsn, "Balance")[0] == "build"


def test_status_shows_lag_holders_and_the_cli(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Counters=COUNTERS), lifecycles={"Totals": "async"})
    append_accounts(store, 10)
    status = json.loads(succeeded("status", "--dsn", dsn, "--json").stdout)
    totals = next(s for s in status if s["name"] == "Totals")
    assert (totals["status"], totals["lagEvents"], totals["highWater"], totals["holder"]) == ("build", 10, 10, None)
    balance = next(s for s in status if s["name"] == "Balance")
    assert (balance["lifecycle"], balance["status"], balance["lagEvents"]) == ("inline", "current", None)
    with daemon_thread(dsn) as worker:
        wait_for_projections(store, timeout=60)
        wait_until(lambda: any(s.holder == worker.id for s in projection_status(store)))
    table = jsproj("status", "--dsn", dsn, env={"COLUMNS": "200"}).stdout
    assert "Totals" in table and "no daemon" in table and "10" in table, "the daemon has gone: no daemon holds it"


def test_builds_read_tricky_text_faithfully(store: EventStore, dsn: str) -> None:
    """Builds read pages as COPY text: escapes, tabs, newlines, backslashes, unicode and metadata survive."""
    files = sources(
        Echo="""projections.projectStream('Odd').named('Echo').by({
      $any: function (s, e, meta) { s.events = (s.events || []).concat([{ e: e, meta: meta.metadata, at: meta.timestamp }]); }
    });"""
    )
    deploy(store, files, lifecycles={"Echo": "async"})
    odd = 'tab\there\nnew line\\back\\slash "quoted" 😀 \u00e9\u0301 \\N \\t'
    store.append({"id": odd, "type": "Odd", "metadata": {"note": odd, "n": [1, None, {"x": odd}]},
                  "data": [{"$type": odd, "text": odd, "nested": {odd: [odd]}}, {"$type": "Empty"}]})  # fmt: skip
    store.append(
        {"id": "plain", "type": "Odd", "timestamp": "2026-01-05T08:00:00.123456+02:00", "data": {"$type": "T"}}
    )
    Daemon(dsn).run(until_caught_up=True)
    same_as_from_scratch(store, files)
    echo = fetch_view(store, "Echo", odd)
    assert echo["events"][0]["e"]["text"] == odd
    assert echo["events"][0]["meta"]["n"][2] == {"x": odd}
    assert fetch_view(store, "Echo", "plain")["events"][0]["at"] == "2026-01-05T06:00:00.123Z"


def test_stores_in_two_schemas_run_projections_of_the_same_name_side_by_side(dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    async_ = {"Balance": "async", "Totals": "async", "ByAmount": "async"}
    with EventStore(dsn) as first, EventStore(dsn, schema="second") as second:
        for store in (first, second):
            deploy(store, files, lifecycles=async_)
            append_accounts(store, 30)
        with daemon_thread(dsn):  # holds the first store's Balance, Totals and ByAmount for as long as it runs
            wait_for_projections(first, timeout=60)
            with daemon_thread(dsn, schema="second"):
                wait_for_projections(second, timeout=60)  # (a lock per name for both stores: this times out)
                holders = {s.name: s.holder for s in projection_status(second)}
                assert all(holders.values()), holders
            assert {s.name: s.holder for s in projection_status(second)} == dict.fromkeys(holders), (
                "the first store's daemon holds nothing of the second's"
            )
        same_as_from_scratch(second, files)


def test_a_daemon_with_nothing_deployed_says_what_it_waits_for(dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jsproj.daemon")
    assert Daemon(dsn).run(until_caught_up=True)
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("no async projections are deployed in schema public: waiting for a deploy") for m in said)
