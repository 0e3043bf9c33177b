"""One async projection across several daemons (partitions), shared pages, and poison events in one pass."""

from __future__ import annotations

import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from jsproj import errors
from jsproj.follow.daemon import Daemon
from jsproj.projections.deploy import deploy
from jsproj.projections.status import projection_status, wait_for_projections
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore
from test_daemon import append_accounts, appending_meanwhile, daemon_process, same_as_from_scratch

from projections import COUNTERS, SLOW, sources
from waiting import wait_until

pytestmark = pytest.mark.slow  # several daemons, kill -9 and rebalancing: seconds each

ASYNC = {"Balance": "async", "Totals": "async", "ByAmount": "async"}
PARTITIONED = {"Balance": 6, "ByAmount": 3}


def rows(dsn: str, name: str) -> list[tuple[int, str, int]]:
    """(partition, status, last_position) of each progress row of ``name``."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select partition, status, last_position from pge_projection_progress where name = %s order by partition",
            (name,),
        ).fetchall()


def test_a_partitioned_projection_has_a_progress_row_per_partition_and_catches_up_exactly(
    store: EventStore, dsn: str
) -> None:
    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles=ASYNC, partitions=PARTITIONED)
    assert [r[:2] for r in rows(dsn, "Balance")] == [(p, "build") for p in range(6)]
    append_accounts(store, 200, streams=25)
    Daemon(dsn, page_size=30).run(until_caught_up=True)
    assert {r[1:] for r in rows(dsn, "Balance")} == {("running", 200)}, "built at once, for every partition"
    append_accounts(store, 150, streams=25, start=200)
    Daemon(dsn, page_size=30).run(until_caught_up=True)
    assert {r[1:] for r in rows(dsn, "Balance")} == {("running", 350)}
    same_as_from_scratch(store, files)
    [balance] = [s for s in projection_status(store) if s.name == "Balance"]
    assert (balance.partitions, balance.position, balance.lag_events) == (6, 350, 0)


def test_two_daemons_split_one_projection_by_partition_and_never_double_apply(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles={"Balance": "async"}, partitions={"Balance": 6})
    append_accounts(store, 20, streams=12)
    daemons = [daemon_process(dsn, "--page-size", "20"), daemon_process(dsn, "--page-size", "20")]
    try:

        def three_each() -> bool:
            [balance] = [s for s in projection_status(store) if s.name == "Balance"]
            return balance.holder is not None and len(balance.holder.split(", ")) == 2

        wait_until(three_each)  # both daemons hold partitions of the one projection
        with ThreadPoolExecutor(3) as pool:
            for writing in [pool.submit(append_accounts, store, 100, 12, 20 + k * 100) for k in range(3)]:
                writing.result()
        wait_for_projections(store, timeout=120)
        same_as_from_scratch(store, files)
    finally:
        for process in daemons:
            process.send_signal(signal.SIGTERM)
        for process in daemons:
            assert process.wait(timeout=30) == 0


@pytest.mark.parametrize("killed", [0, 1])
def test_kill_minus_nine_of_either_daemon_mid_page_and_the_other_takes_its_partitions_over(
    store: EventStore, dsn: str, killed: int
) -> None:
    files = sources(Slow=SLOW.replace("aggregate('Slow')", "projectStream('Account').named('Slow')"))
    deploy(store, files, lifecycles={"Slow": "async"}, partitions={"Slow": 4})
    append_accounts(store, 8, streams=8)
    Daemon(dsn).run(until_caught_up=True)
    append_accounts(store, 400, streams=8, start=8)
    daemons = [daemon_process(dsn, "--page-size", "20"), daemon_process(dsn, "--page-size", "20")]
    survivor = daemons[1 - killed]
    try:
        wait_until(lambda: len(holders(store)) == 2 and sum(r[2] > 8 for r in rows(dsn, "Slow")) >= 2)
        daemons[killed].send_signal(signal.SIGKILL)  # pages of 20 slow events (~40 ms): lands inside one
        daemons[killed].wait(timeout=30)
        # No heartbeat ageing: the survivor sees the dead daemon's connection gone, takes every
        # partition, and catches up alone.
        wait_for_projections(store, timeout=120)
        assert holders(store) == {survivor_id(store, survivor.pid)}
    finally:
        for process in daemons:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=30) == 0
    same_as_from_scratch(store, files)
    assert {r[1:] for r in rows(dsn, "Slow")} == {("running", 408)}


def holders(store: EventStore) -> set[str]:
    [slow] = [s for s in projection_status(store) if s.name == "Slow"]
    return set(slow.holder.split(", ")) if slow.holder else set()


def survivor_id(store: EventStore, pid: int) -> str:
    with store.connection() as conn:
        row = conn.execute("select id from pge_daemons where pid = %s", (pid,)).fetchone()
    assert row is not None
    return str(row[0])


def test_partitions_are_for_async_stream_and_view_projections_and_a_new_count_rebuilds(
    store: EventStore, dsn: str
) -> None:
    files = sources(Counters=COUNTERS)
    with pytest.raises(errors.InputError, match="only async stream and view projections have partitions"):
        deploy(store, files, lifecycles=ASYNC, partitions={"Totals": 2})
    with pytest.raises(errors.InputError, match=r"\(Balance is an inline stream projection\)"):
        deploy(store, files, partitions={"Balance": 2})
    with pytest.raises(errors.UnknownProjectionError, match="Nope"):
        deploy(store, files, lifecycles=ASYNC, partitions={"Nope": 2})
    from jsproj.projections.deploy import parse_partitions

    for bad in ("Balance=0", "Balance=257", "Balance", "Balance=two"):
        with pytest.raises(errors.InputError, match="--partitions takes NAME=N"):
            parse_partitions([bad])
    deploy(store, files, lifecycles=ASYNC, partitions={"Balance": 4})
    append_accounts(store, 60, streams=9)
    Daemon(dsn).run(until_caught_up=True)
    report = deploy(store, files, lifecycles=ASYNC, partitions={"Balance": 2})
    assert report.changed == ["Balance"] and report.building == ["Balance"]
    assert [r[:2] for r in rows(dsn, "Balance")] == [(0, "build"), (1, "build")]
    assert fetch_view(store, "Balance", "acc-0") is not None, "the old view serves until the new one is swapped in"
    Daemon(dsn).run(until_caught_up=True)
    same_as_from_scratch(store, files)


POISONED = """
projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, moves: 0 }; },
  Deposited: function (s, e) { s.balance += e.amount; s.moves += 1; if (e.poison) throw new Error('poison'); }
});
projections.aggregate('Totals').by({
  $any: function (s, e) { s.events = (s.events || 0) + 1; if (e.poison) throw new Error('poison'); }
});
projections.projectView('ByAmount').identifiedBy(function (e) { return ['all', 'a' + e.amount]; }).by({
  $any: function (s, e) { s.n = (s.n || 0) + 1; if (e.poison) throw new Error('poison'); }
});
"""


def append_poisoned(store: EventStore, count: int, every: int, start: int = 0) -> set[int]:
    """Append ``count`` deposits, every ``every``-th one poison (0: none); the positions of the poison ones."""
    messages = [
        {"id": f"acc-{n % 7}", "type": "Account",
         "data": {"$type": "Deposited", "amount": n % 5, **({"poison": True} if every and n % every == 0 else {})}}
        for n in range(start, start + count)
    ]  # fmt: skip
    before = store.read_all(after=0, limit=1_000_000)
    store.append_all(messages)
    after = store.read_all(after=before[-1].position if before else 0, limit=1_000_000)
    return {e.position for e in after if e.event.get("poison")}


def dead_letters(dsn: str) -> dict[str, set[int]]:
    with psycopg.connect(dsn) as conn:
        found: dict[str, set[int]] = {}
        for name, position in conn.execute("select projection, position from pge_dead_letters").fetchall():
            found.setdefault(name, set()).add(position)
        return found


@pytest.mark.parametrize("phase", ["build", "running"])
def test_poison_events_are_dead_lettered_in_one_pass_and_the_views_are_as_without_them(
    store: EventStore, dsn: str, phase: str
) -> None:
    files = sources(Poisoned=POISONED)
    policies = {name: "dead-letter" for name in ASYNC}
    deploy(store, files, lifecycles=ASYNC, on_error=policies, partitions={"Balance": 3})
    poison = append_poisoned(store, 20, every=0)
    if phase == "running":
        Daemon(dsn).run(until_caught_up=True)
    poison |= append_poisoned(store, 900, every=13, start=20)
    assert len(poison) > 60
    Daemon(dsn, page_size=500).run(until_caught_up=True)
    assert dead_letters(dsn) == {name: poison for name in ASYNC}
    clean = [m for m in store.read_all(after=0, limit=10_000) if m.position not in poison]
    expected = from_scratch_of(files, clean)
    assert fetch_view(store, "Totals") == {"Totals": expected["aggregates"]["Totals"]}
    assert {k: fetch_view(store, "Balance", k) for k in expected["views"]["Balance"]} == expected["views"]["Balance"]
    assert {k: fetch_view(store, "ByAmount", k) for k in expected["views"]["ByAmount"]} == expected["views"]["ByAmount"]


def from_scratch_of(files: list[dict[str, str]], events: list) -> dict:
    from jsproj import simulate
    from jsproj.engine.projections import Projections

    messages = [{"id": e.stream_id, "type": e.stream_type, "data": e.event} for e in events]
    with Projections(files) as loaded:
        return dict(simulate(loaded, messages))


def test_one_projection_stopping_on_a_shared_page_leaves_the_others_going(store: EventStore, dsn: str) -> None:
    files = sources(Poisoned=POISONED)
    deploy(store, files, lifecycles=ASYNC, on_error={"Totals": "dead-letter", "ByAmount": "dead-letter"})
    append_poisoned(store, 30, every=0)
    Daemon(dsn).run(until_caught_up=True)
    [poison] = append_poisoned(store, 30, every=17, start=35)  # one poison event: n = 51
    stopped = threading.Event()
    try:
        Daemon(dsn, page_size=1000).run(until_caught_up=True)
    except errors.ProjectionStoppedError:
        stopped.set()
    assert stopped.is_set()
    assert rows(dsn, "Balance") == [(0, "stopped", poison - 1)], "stopped on the poison event, the ones before applied"
    assert rows(dsn, "Totals") == [(0, "running", 60)] and rows(dsn, "ByAmount") == [(0, "running", 60)]
    assert dead_letters(dsn) == {"Totals": {poison}, "ByAmount": {poison}}
    [balance] = [s for s in projection_status(store) if s.name == "Balance"]
    assert json.dumps(balance.error).count("poison") >= 1


def test_projections_at_different_positions_merge_into_one_group(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles={"Balance": "async", "Totals": "async", "ByAmount": "live"})
    append_accounts(store, 50)
    Daemon(dsn).run(until_caught_up=True)
    with psycopg.connect(dsn, autocommit=True) as conn:  # Totals 20 events behind Balance, as after a restart
        conn.execute("update pge_projection_progress set last_position = 30, last_tx = (select tx_id from pge_events "
                     "where position = 30) where name = 'Totals'")  # fmt: skip
        conn.execute("update pge_aggregates set data = %s where name = 'Totals'",
                     (json.dumps(from_scratch_totals(store, files, 30)),))  # fmt: skip
    append_accounts(store, 200, start=50)
    Daemon(dsn, page_size=7).run(until_caught_up=True)
    assert rows(dsn, "Balance")[0][1:] == rows(dsn, "Totals")[0][1:] == ("running", 250)
    same_as_from_scratch(store, files)


def from_scratch_totals(store: EventStore, files: list[dict[str, str]], up_to: int) -> dict:
    events = [e for e in store.read_all(after=0, limit=10_000) if e.position <= up_to]
    return from_scratch_of(files, events)["aggregates"]["Totals"]


def partition_of(key: str, count: int) -> int:
    """FNV-1a over UTF-16 code units, as js/lib/policies.js (for keys of the BMP)."""
    h = 0x811C9DC5
    for char in key:
        h = ((h ^ ord(char)) * 0x01000193) & 0xFFFFFFFF
    return h % count


TAGS = """
projections.projectView('ByTag').identifiedBy(function (e) { return e.tags; }).by({
  Ready: function (s) { s.ready = true; },
  Used: function (s, e) { if (!s.ready) throw new Error('not ready'); s.used = (s.used || 0) + 1; }
}).async();
"""


def test_an_event_skipped_in_one_partition_is_retried_only_there(store: EventStore, dsn: str) -> None:
    x = next(k for k in ("x", "x1", "x2", "x3") if partition_of(k, 2) == 0)
    y = next(k for k in ("y", "y1", "y2", "y3") if partition_of(k, 2) == 1)
    deploy(store, sources(Tags=TAGS), on_error={"ByTag": "dead-letter"}, partitions={"ByTag": 2})
    daemons = [daemon_process(dsn), daemon_process(dsn)]
    try:

        def one_each() -> bool:
            [view] = [s for s in projection_status(store) if s.name == "ByTag"]
            return view.holder is not None and len(view.holder.split(", ")) == 2

        wait_until(one_each)  # each daemon holds one partition: x's and y's documents are apart
        wait_for_projections(store, timeout=60)  # built (a build skips a poison event for every partition)
        store.append({"id": "s", "type": "Tag", "data": {"$type": "Ready", "tags": [y]}})
        store.append({"id": "s", "data": {"$type": "Used", "tags": [x, y]}})  # fails for x only
        wait_for_projections(store, timeout=60)
        with psycopg.connect(dsn) as conn:
            letters = conn.execute("select position, partitions from pge_dead_letters").fetchall()
        assert letters == [(2, [0])], "dead-lettered for x's partition only"
        assert fetch_view(store, "ByTag", y) == {"ready": True, "used": 1}
        with pytest.raises(errors.UnknownDocumentError):
            fetch_view(store, "ByTag", x)
        store.append({"id": "s", "data": {"$type": "Ready", "tags": [x]}})
        wait_for_projections(store, timeout=60)
        from clihelp import jsproj

        retried = jsproj("retry", "ByTag", "--dsn", dsn, "--json")
        assert retried.returncode == 0, retried.stderr
        wait_until(lambda: not dead_letters(dsn))  # the daemon holding x's partition retries it
        assert fetch_view(store, "ByTag", x) == {"ready": True, "used": 1}
        assert fetch_view(store, "ByTag", y) == {"ready": True, "used": 1}, "not applied twice to y"
    finally:
        for process in daemons:
            process.send_signal(signal.SIGTERM)
        for process in daemons:
            assert process.wait(timeout=30) == 0


def test_a_page_too_slow_as_a_whole_is_cut_and_blames_no_event(store: EventStore, dsn: str) -> None:
    """A time limit names the event running when it hit: with many events each well within it, the page
    is halved until it fits, and nothing is dead-lettered."""
    deploy(store, sources(Slow=SLOW), lifecycles={"Slow": "async"}, on_error={"Slow": "dead-letter"})
    Daemon(dsn).run(until_caught_up=True)  # built, on no events
    append_accounts(store, 240)
    assert Daemon(dsn, timeout=0.15, page_size=240).run(until_caught_up=True)  # ~2 ms an event: ~0.5 s a page
    assert dead_letters(dsn) == {}
    assert fetch_view(store, "Slow") == {"Slow": {"n": 240}}


def test_until_caught_up_returns_under_endless_appends_and_says_whether_it_did(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles=ASYNC)
    append_accounts(store, 50)
    with appending_meanwhile(store, start=50):
        results: list[bool] = []
        runner = threading.Thread(target=lambda: results.append(Daemon(dsn).run(until_caught_up=True)))
        runner.start()
        runner.join(timeout=60)
        assert not runner.is_alive() and results == [True], "it caught up with what was there when it started"
    stopped = Daemon(dsn)
    stopped.stop()
    assert stopped.run(until_caught_up=True) is False, "stopped before it caught up"


def test_a_page_of_an_older_epoch_is_not_written_even_where_a_new_build_ended(store: EventStore, dsn: str) -> None:
    """A rebuild that ends at the very position a stale page starts from: the epoch tells them apart."""
    from jsproj.engine.projections import Projections
    from jsproj.follow.daemon import pages, progress
    from jsproj.follow.daemon.progress import Unit
    from jsproj.store import log as lines

    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles={"Balance": "async"})
    append_accounts(store, 30)
    Daemon(dsn).run(until_caught_up=True)
    append_accounts(store, 10, start=30)
    before = fetch_view(store, "Balance", "acc-0")
    with psycopg.connect(dsn, autocommit=True) as conn, Projections(files) as loaded:
        lines.prepare(conn)
        [row] = progress.read(conn, [Unit("Balance")])
        page = lines.read_lines(conn, row.after, 100)
        assert page is not None and page.count == 10
        prepared = pages.prepare(conn, loaded, [row.unit], {"Balance": "stop"}, row.after, page,
                                 epochs={row.unit: row.epoch})  # fmt: skip
        progress.restart_build(conn, "Balance")  # a rebuild, done meanwhile, ending where the page starts:
        assert progress.swapped_in(conn, "Balance", row.epoch + 1, row.after, 30)
        assert pages.commit(conn, prepared) is None, "the stale page is refused"
    assert fetch_view(store, "Balance", "acc-0") == before
    assert rows(dsn, "Balance") == [(0, "running", 30)]


def test_a_retry_that_fails_in_one_partition_still_runs_in_the_others(store: EventStore, dsn: str) -> None:
    from jsproj.engine.projections import Projections
    from jsproj.follow.daemon.poison import request_retry, retry_dead_letters
    from jsproj.follow.daemon.progress import Unit
    from jsproj.store import log as lines

    x = next(k for k in ("x", "x1", "x2", "x3") if partition_of(k, 2) == 0)
    y = next(k for k in ("y", "y1", "y2", "y3") if partition_of(k, 2) == 1)
    files = sources(Tags=TAGS)
    deploy(store, files, on_error={"ByTag": "dead-letter"}, partitions={"ByTag": 2})
    store.append({"id": "s", "type": "Tag", "data": {"$type": "Used", "tags": [x, y]}})  # fails for both
    Daemon(dsn).run(until_caught_up=True)  # a build: dead-lettered for every partition
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select partitions from pge_dead_letters").fetchall() == [([0, 1],)]
    store.append({"id": "s", "data": {"$type": "Ready", "tags": [y]}})  # y can take it now, x not yet
    Daemon(dsn).run(until_caught_up=True)
    with psycopg.connect(dsn) as conn, Projections(files) as loaded:
        lines.prepare(conn)
        assert request_retry(conn, "ByTag") == 1
        conn.commit()
        assert retry_dead_letters(conn, loaded, Unit("ByTag", 0, 2), requested_only=True) == 0  # x fails again
        assert retry_dead_letters(conn, loaded, Unit("ByTag", 1, 2), requested_only=True) == 0  # y applies it
        letter = conn.execute("select partitions, retry from pge_dead_letters").fetchone()
    assert letter == ([0], False), "kept for x's partition; every partition tried"
    assert fetch_view(store, "ByTag", y) == {"ready": True, "used": 1}


def test_record_lines_are_read_right_whatever_the_server_timezone_and_datestyle(store: EventStore, dsn: str) -> None:
    stamps = """projections.projectStream('Account').named('Stamps').by({
      $any: function (s, e, meta) { s.at = meta.timestamp; }
    }).async();"""
    with psycopg.connect(dsn, autocommit=True) as conn:
        database = conn.execute("select current_database()").fetchone()[0]
        conn.execute(f"alter database {database} set timezone = 'Asia/Kathmandu'")
        conn.execute(f"alter database {database} set datestyle = 'SQL, DMY'")
    deploy(store, sources(Stamps=stamps))
    store.append({"id": "acc-1", "type": "Account", "data": {"$type": "Deposited"},
                  "timestamp": "2026-03-04T05:06:07.123Z"})  # fmt: skip
    Daemon(dsn).run(until_caught_up=True)  # a build
    store.append({"id": "acc-2", "type": "Account", "data": {"$type": "Deposited"},
                  "timestamp": "2026-03-04T05:06:08.250Z"})  # fmt: skip
    Daemon(dsn).run(until_caught_up=True)  # a page
    assert fetch_view(store, "Stamps", "acc-1") == {"at": "2026-03-04T05:06:07.123Z"}
    assert fetch_view(store, "Stamps", "acc-2") == {"at": "2026-03-04T05:06:08.250Z"}


def test_a_build_in_pages_too_slow_as_a_whole_builds_again_in_shorter_ones_and_stops_nothing(
    store: EventStore, dsn: str
) -> None:
    deploy(store, sources(Slow=SLOW), lifecycles={"Slow": "async"})  # the policy: stop
    append_accounts(store, 300)
    assert Daemon(dsn, timeout=0.15, page_size=300).run(until_caught_up=True)  # ~2 ms an event: 100 take ~0.2 s
    assert rows(dsn, "Slow") == [(0, "running", 300)]
    assert fetch_view(store, "Slow") == {"Slow": {"n": 300}}


LOOPS_ON_ONE = """
projections.projectStream('Account').named('Loops').by({
  Deposited: function (s, e) { if (e.amount === 6) { for (;;) {} } s.n = (s.n || 0) + 1; }
}).async();
"""


def test_an_event_that_alone_hits_the_limit_ends_a_build_instead_of_starting_it_again_for_ever(
    store: EventStore, dsn: str
) -> None:
    deploy(store, sources(Loops=LOOPS_ON_ONE))  # the policy: stop
    append_accounts(store, 400)  # amounts n % 7: some are 6
    outcome: list[object] = []

    def build() -> None:
        try:
            Daemon(dsn, timeout=0.2, page_size=400).run(until_caught_up=True)
        except errors.ProjectionStoppedError as exc:
            outcome.append(exc)

    runner = threading.Thread(target=build)
    runner.start()
    runner.join(timeout=120)
    assert not runner.is_alive(), "the build kept starting again"
    assert len(outcome) == 1 and rows(dsn, "Loops")[0][1] == "stopped"


def test_a_view_whose_key_function_hits_the_limit_is_dead_lettered_once(store: EventStore, dsn: str) -> None:
    keys = """projections.projectView('Keys').identifiedBy(function (e) {
      if (e.amount === 6) { for (;;) {} } return 'k' + e.amount;
    }).by({ $any: function (s) { s.n = (s.n || 0) + 1; } }).async();"""
    deploy(store, sources(Keys=keys), on_error={"Keys": "dead-letter"})
    Daemon(dsn).run(until_caught_up=True)  # built, on no events
    append_accounts(store, 14)  # two events of amount 6
    assert Daemon(dsn, timeout=0.2).run(until_caught_up=True)
    assert {name: len(found) for name, found in dead_letters(dsn).items()} == {"Keys": 2}
    assert sum(fetch_view(store, "Keys", f"k{a}")["n"] for a in range(6)) == 12


def test_more_partitions_than_before_build_and_run(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles=ASYNC, partitions={"Balance": 2})
    append_accounts(store, 40, streams=9)
    Daemon(dsn).run(until_caught_up=True)
    deploy(store, files, lifecycles=ASYNC, partitions={"Balance": 5})
    assert Daemon(dsn).run(until_caught_up=True)
    assert {r[1:] for r in rows(dsn, "Balance")} == {("running", 40)} and len(rows(dsn, "Balance")) == 5
    same_as_from_scratch(store, files)


FLAKY = """
var calls = 0;
projections.projectStream('Account').named('Flaky').by({
  Deposited: function (s, e) { calls += 1; if (e.amount === 6 || calls === 7) throw new Error('flaky'); s.n = (s.n || 0) + 1; }
}).async();
"""


def test_projection_code_that_fails_only_when_folded_again_stops_a_build_rather_than_losing_events(
    store: EventStore, dsn: str
) -> None:
    """Its events of the page are gone from the fold: the projection must not go on as if only one was."""
    deploy(store, sources(Flaky=FLAKY), on_error={"Flaky": "dead-letter"})
    append_accounts(store, 20, streams=1)  # amounts n % 7: the 7th event (amount 6) throws, its refold throws
    with pytest.raises(errors.ProjectionStoppedError):
        Daemon(dsn).run(until_caught_up=True)
    assert rows(dsn, "Flaky")[0][1] == "stopped"


# -- a batch of messages with inline projections on the Python engine (issue 17's bulk appends) -------------


def test_a_batch_of_messages_runs_python_engine_inline_projections_per_page_with_the_same_documents(
    store: EventStore, dsn: str
) -> None:
    from jsproj.store.sync import INLINE_PAGE

    files = sources(Counters=COUNTERS)
    deploy(store, files)  # every projection inline, on the Python engine
    messages = [
        {"id": f"acc-{n % 13}", "type": "Account",
         "data": {"$type": "Withdrawn" if n % 4 == 3 else "Deposited", "amount": n % 7}}
        for n in range(INLINE_PAGE * 2 + 345)
    ]  # fmt: skip
    results = store.append_all(messages)
    assert len(results) == len(messages) and results[-1].positions == [len(messages)]
    same_as_from_scratch(store, files)  # pages of 1,000 events give the documents one event at a time gives


def test_a_handler_failing_in_a_batch_names_its_message_and_stores_nothing(store: EventStore, dsn: str) -> None:
    picky = """projections.projectStream('Account').named('Picky').by({
      Deposited: function (s, e) { if (e.amount === 99) throw new Error('no 99'); s.n = (s.n || 0) + 1; }
    });"""
    deploy(store, sources(Picky=picky))
    messages = [
        {"id": f"a{n}", "type": "Account", "data": {"$type": "Deposited", "amount": n % 98}} for n in range(1500)
    ]
    messages[1234]["data"]["amount"] = 99
    with pytest.raises(errors.ProjectionHandlerError, match=r"^message 1235: projection Picky failed"):
        store.append_all(messages)
    assert store.read_all(after=0, limit=10) == [], "nothing stored, not the messages before it either"
