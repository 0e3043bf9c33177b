"""Operating the daemon: Prometheus metrics and /healthz over real HTTP, log lines as text and JSON, and no
password of a DSN in any output -- against the real PostgreSQL, with the real daemon."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import threading
import urllib.error
import urllib.request

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from clihelp import JSPROJ, jsproj
from jsproj import logs
from jsproj.follow.daemon import Daemon, session
from jsproj.follow.daemon.metrics import DaemonMetrics, MetricsServer
from jsproj.projections.deploy import deploy
from jsproj.projections.status import wait_for_projections
from jsproj.redact import redact
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import temporary_cluster

from projections import PARTY_EVENTS, counting, sources
from waiting import wait_until

pytestmark = pytest.mark.slow  # long builds, heartbeats and health checks that wait on them

COUNT = counting("Count")
STOPS = """
projections.aggregate('Stops').by({ $any: function (s, e) { if (e.poison) throw new Error('poison'); s.n = 1; } });
"""
LETTERS = """
projections.aggregate('Letters').by({ $any: function (s, e) { if (e.poison) throw new Error('poison'); s.n = 1; } });
"""
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"
SECRET = "SECRET-pw-4711"  # noqa: S105 -- the password no output may show


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 -- our own server on loopback
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(server: MetricsServer) -> dict[tuple[str, str], float]:
    """The samples of /metrics, parsed by prometheus_client's own parser: (name, projection label) -> value."""
    status, text = get(server.url + "/metrics")
    assert status == 200
    return {
        (sample.name, sample.labels.get("projection", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def start(worker: Daemon) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_metrics_move_with_appends_and_healthz_follows_the_database(store: EventStore, dsn: str) -> None:
    files = [{"file": f"{n}.js", "source": s} for n, s in (("Count", COUNT), ("Stops", STOPS), ("Letters", LETTERS))]
    lifecycles = {"Count": "async", "Stops": "async", "Letters": "async"}
    deploy(store, files, lifecycles=lifecycles, on_error={"Letters": "dead-letter"})
    database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    elsewhere = dsn.replace(f"dbname={database}", "dbname=postgres")
    hooks = DaemonMetrics()
    worker = Daemon(dsn + f" password={SECRET}", poll_interval=0.05, hooks=hooks)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("jsproj.daemon")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # (setLevel, not the attribute: it clears what isEnabledFor cached)
    with hooks.serve(worker, "127.0.0.1", 0) as server:
        status, body = get(server.url + "/healthz")
        assert (status, body) == (503, "not connected to the database yet\n")
        thread = start(worker)
        try:
            wait_until(lambda: get(server.url + "/healthz")[0] == 200)
            assert "holding 3 units" in get(server.url + "/healthz")[1]
            wait_for_projections(store, timeout=60)  # healthy already during the first builds: they are done now
            for n in range(20):
                store.append({"id": f"s-{n % 3}", "type": "S", "data": {"$type": "Happened", "n": n}})
            store.append({"id": "s-0", "data": {"$type": "Happened", "poison": True}})
            store.append({"id": "s-1", "data": {"$type": "Happened", "n": 99}})
            wait_until(lambda: scrape(server).get(("jsproj_projection_events_applied_total", "Count")) == 22)
            wait_until(lambda: scrape(server).get(("jsproj_projection_lag_events", "Count")) == 0)
            samples = scrape(server)
            assert samples[("jsproj_daemon_up", "")] == 1
            assert samples[("jsproj_daemon_held_units", "")] == 3
            assert samples[("jsproj_projection_pages_applied_total", "Count")] >= 1
            assert samples[("jsproj_projection_lag_seconds", "Count")] == 0
            # The stopping projection: stopped on the poison event, two events behind; the other dead-letters it.
            assert samples[("jsproj_projection_stopped", "Stops")] == 1
            assert samples[("jsproj_projection_stopped", "Count")] == 0
            assert samples[("jsproj_projection_lag_events", "Stops")] == 2
            assert samples[("jsproj_projection_lag_seconds", "Stops")] > 0
            assert samples[("jsproj_projection_errors_total", "Stops")] == 1
            assert samples[("jsproj_projection_dead_letters_written_total", "Letters")] == 1
            assert samples[("jsproj_projection_dead_letters", "Letters")] == 1
            assert samples[("jsproj_projection_errors_total", "Letters")] == 1
            assert samples[("jsproj_projection_lag_events", "Letters")] == 0
            assert samples[("jsproj_daemon_sandbox_restarts_total", "")] == 0
            # The database goes away: its connections end and no new one is let in.
            with psycopg.connect(elsewhere, autocommit=True) as admin:
                admin.execute(f'alter database "{database}" allow_connections false')
                admin.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                              "where application_name like 'jsproj daemon%%'")  # fmt: skip
            wait_until(lambda: get(server.url + "/healthz")[0] == 503)
            assert get(server.url + "/healthz")[1].startswith("lost the database")
            samples = scrape(server)
            assert samples[("jsproj_daemon_up", "")] == 0
            assert samples[("jsproj_daemon_disconnects_total", "")] >= 1
        finally:
            worker.stop()
            thread.join(timeout=30)
            logger.removeHandler(handler)
            logger.setLevel(level)
            with psycopg.connect(elsewhere, autocommit=True) as admin:
                admin.execute(f'alter database "{database}" allow_connections true')
    assert not thread.is_alive()
    assert get_refused(server.url), "the server closed with the daemon"
    lost = [r for r in records if r.getMessage().startswith("lost the database")]
    assert lost and all(r.levelno == logging.WARNING and "\n" not in r.getMessage() for r in lost)
    assert any(r.getMessage() == "working on Count" and r.levelno == logging.INFO for r in records)
    assert not [r for r in records if SECRET in r.getMessage()]


def get_refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/healthz", timeout=5)  # noqa: S310 -- loopback
    except urllib.error.URLError as exc:
        return not isinstance(exc, urllib.error.HTTPError)
    return False


def test_two_daemons_in_one_process_have_registries_of_their_own(store: EventStore, dsn: str) -> None:
    deploy(store, [{"file": "Count.js", "source": COUNT}], lifecycles={"Count": "async"})
    store.append({"id": "s-1", "type": "S", "data": {"$type": "Happened"}})
    first, second = DaemonMetrics(), DaemonMetrics()
    one, other = Daemon(dsn, poll_interval=0.05, hooks=first), Daemon(dsn, poll_interval=0.05, hooks=second)
    with first.serve(one) as a, second.serve(other) as b:
        threads = [start(one), start(other)]
        try:
            wait_until(lambda: get(a.url + "/healthz")[0] == 200 and get(b.url + "/healthz")[0] == 200)
            wait_until(
                lambda: scrape(a)[("jsproj_daemon_held_units", "")] + scrape(b)[("jsproj_daemon_held_units", "")] == 1
            )
            idle = b if scrape(a)[("jsproj_daemon_held_units", "")] == 1 else a
            assert get(idle.url + "/healthz") == (200, "ok: connected; nothing to hold (idle)\n")
            assert get(idle.url + "/nothing")[0] == 404
        finally:
            one.stop()
            other.stop()
            for thread in threads:
                thread.join(timeout=30)


def daemon_stderr(dsn: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """The stderr lines of ``jsproj daemon --until-caught-up`` as a process, stderr a pipe (not a terminal)."""
    done = subprocess.run(
        [str(JSPROJ), "daemon", "--dsn", dsn, "--until-caught-up", "--metrics-port", "0", *args],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", **(env or {})},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_log_lines_have_time_and_level_and_are_never_wrapped(store: EventStore, dsn: str) -> None:
    deploy(store, [{"file": "Count.js", "source": COUNT}], lifecycles={"Count": "async"})
    store.append({"id": "s-1", "type": "S", "data": {"$type": "Happened"}})
    lines = daemon_stderr(dsn)
    assert lines and all(re.match(TIME + r" (DEBUG|INFO|WARNING|ERROR) jsproj\.daemon: ", line) for line in lines)
    started = next(line for line in lines if "; metrics on http://127.0.0.1:" in line)
    assert len(started) > 100 and started.endswith("/metrics"), "a long line is one line, whatever the width"
    assert any(line.endswith("INFO jsproj.daemon: working on Count") for line in lines)
    assert lines[-1].endswith("caught up (1 event)")


def test_the_caught_up_count_says_it_is_summed_over_the_projections(store: EventStore, dsn: str) -> None:
    deploy(store, [{"file": "Count.js", "source": COUNT}, {"file": "Letters.js", "source": LETTERS}],
           lifecycles={"Count": "async", "Letters": "async"})  # fmt: skip
    store.append({"id": "s-1", "type": "S", "data": {"$type": "Happened"}})
    assert daemon_stderr(dsn)[-1].endswith("caught up (2 events applied, summed over 2 projections)")


@pytest.mark.parametrize("how", ["option", "env"])
def test_json_log_format_is_one_object_per_line(store: EventStore, dsn: str, how: str) -> None:
    deploy(store, [{"file": "Count.js", "source": COUNT}], lifecycles={"Count": "async"})
    option = ["--log-format", "json"] if how == "option" else []
    lines = daemon_stderr(dsn, *option, env={"JSPROJ_LOG_FORMAT": "json"} if how == "env" else None)
    entries = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message", "daemon", "schema"} <= set(entry) for entry in entries)
    assert all(re.fullmatch(TIME, entry["time"]) and entry["logger"] == "jsproj.daemon" for entry in entries)
    assert len({entry["daemon"] for entry in entries}) == 1 and {entry["schema"] for entry in entries} == {"public"}
    working = next(e for e in entries if e["message"].startswith("working on"))
    assert (working["projection"], working["partition"]) == ("Count", 0), "a log search may filter on them"
    last = [e for e in entries if e["level"] == "INFO"][-1]
    assert last["message"].endswith("caught up (0 events)") and (last["events"], last["caught_up"]) == (0, True)


def test_json_lines_give_each_skipped_count_and_progress_its_own_fields(
    store: EventStore, dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy(
        store,
        [{"file": "Letters.js", "source": LETTERS}],
        lifecycles={"Letters": "async"},
        on_error={"Letters": "dead-letter"},
    )
    store.append_all([{"id": f"s-{n}", "type": "S", "data": {"$type": "Happened", "poison": n % 3 == 0}}
                      for n in range(30)])  # fmt: skip
    logs.configure("json")
    try:
        worker = Daemon(dsn, page_size=7)
        worker.progress.every = 0  # a progress line after every page (10 s apart by default)
        assert worker.run(until_caught_up=True)
    finally:
        logging.getLogger("jsproj").handlers.clear()
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    skipped = [e for e in entries if e["level"] == "WARNING" and e.get("projection") == "Letters"]
    assert sum(e["dead_letters"] for e in skipped) == 10, skipped
    progress = [e for e in entries if "events folded into its build so far" in e["message"]]
    assert progress and progress[-1]["events"] == 30 and progress[-1]["projection"] == "Letters", entries
    assert all(e["events_per_second"] >= 0 for e in progress)


def test_healthz_is_healthy_while_the_first_build_runs(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Party=PARTY_EVENTS), lifecycles={"Party": "async"})
    store.append_all([{"id": f"q{n}", "type": "Quest", "data": {"$type": "Started"}} for n in range(8)])
    hooks = DaemonMetrics()
    worker = Daemon(dsn, poll_interval=0.05, hooks=hooks)
    with psycopg.connect(dsn, autocommit=True) as watch, psycopg.connect(dsn) as reader, hooks.serve(worker) as server:
        table = watch.execute("select pge_document_table('Party')").fetchone()[0]
        reader.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table)))  # holds the swap off
        thread = start(worker)
        try:
            wait_until(
                lambda: watch.execute("""select count(*) from pg_stat_activity where wait_event_type = 'Lock'
                                                and application_name like 'jsproj daemon %% work'""").fetchone()[0]
            )
            assert get(server.url + "/healthz") == (200, "ok: connected; holding 1 unit: Party\n")
            reader.commit()
            wait_for_projections(store, timeout=60)
        finally:
            worker.stop()
            thread.join(timeout=30)


def test_verbose_and_log_format_may_follow_the_command() -> None:
    done = jsproj("status", "--dsn", "postgresql://bob:x-pass-1@[::1/db", "--verbose")
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr
    done = jsproj("--log-format", "xml", "status")
    assert done.returncode == 2 and "'xml' is not one of 'text', 'json'" in done.stderr


BAD_DSNS = {
    "malformed": f"postgresql://bob:{SECRET}@[::1/db",
    "unreachable": f"postgresql://bob:{SECRET}@127.0.0.1:1/db?connect_timeout=5",
    "keywords": f"host=127.0.0.1 port=1 user=bob password={SECRET} connect_timeout=5",
}


@pytest.mark.parametrize("kind", sorted(BAD_DSNS))
def test_the_password_is_never_printed_for_a_bad_dsn(kind: str) -> None:
    for args, env in [
        (["daemon", "--dsn", BAD_DSNS[kind]], None),
        (["daemon", "--verbose", "--log-format", "json", "--dsn", BAD_DSNS[kind]], None),
        (["--verbose", "status", "--json"], {"JSPROJ_DSN": BAD_DSNS[kind]}),
    ]:
        done = jsproj(*args, env=env)
        assert done.returncode == 1, done
        assert "PostgreSQL" in done.stderr
        assert SECRET not in done.stdout + done.stderr, done.stderr


@pytest.mark.server
def test_the_password_is_never_printed_when_the_server_refuses_it() -> None:
    cluster = temporary_cluster()
    cluster.init(durable=False)
    hba = cluster.data_dir / "pg_hba.conf"
    hba.write_text("local all bob scram-sha-256\n" + hba.read_text())
    cluster.start()
    try:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("create role bob login password 'the-right-one'")
        wrong = f"postgresql://bob:{SECRET}@/jsproj?host={cluster.socket_dir}&port={cluster.port}"
        process = subprocess.run([str(JSPROJ), "--verbose", "daemon", "--dsn", wrong], capture_output=True,
                                 text=True, timeout=60)  # fmt: skip
        assert process.returncode == 1
        assert "password authentication failed" in process.stderr
        assert SECRET not in process.stdout + process.stderr
    finally:
        cluster.destroy()


def test_redact_hides_passwords_in_every_shape() -> None:
    assert redact(f'in URI: "postgresql://bob:{SECRET}@[::1/db"') == 'in URI: "postgresql://bob:***@[::1/db"'
    assert redact("host=h password='a b\\' c' user=u") == "host=h password=*** user=u"
    assert redact("user=u PASSWORD = plain") == "user=u PASSWORD = ***"
    assert redact("the odd S%40C@h", "postgresql://u:S%40C@h/db") == "the odd ***@h"
    assert redact("no dsn: mail a@b.c, http://h/x") == "no dsn: mail a@b.c, http://h/x"


def test_a_long_build_beats_and_works_and_one_stuck_behind_a_lock_fails_healthz(
    store: EventStore, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "HEARTBEAT_SECONDS", 0.1)
    deploy(store, sources(Party=PARTY_EVENTS), lifecycles={"Party": "async"})
    store.append_all([{"id": f"q{n}", "type": "Quest", "data": {"$type": "Started"}} for n in range(8)])
    hooks = DaemonMetrics(stall_seconds=0.5)
    worker = Daemon(dsn, poll_interval=0.05, hooks=hooks)
    with psycopg.connect(dsn, autocommit=True) as watch:
        table = watch.execute("select pge_document_table('Party')").fetchone()[0]
        # A user's index that takes a while to build: staged on every rebuild (~2 s here, minutes on a big view)
        watch.execute("""create function slow_key(data jsonb) returns text language plpgsql immutable
                         as $$ begin perform pg_sleep(0.25); return data::text; end $$""")  # fmt: skip
        thread = start(worker)
        try:
            wait_for_projections(store, timeout=60)
            watch.execute(sql.SQL("create index party_slow on {} (slow_key(data))").format(sql.Identifier(table)))

            def building_for(seconds: float, wait: str) -> bool:
                row = watch.execute(
                    """select query_start < now() - make_interval(secs => %s) from pg_stat_activity
                       where application_name like 'jsproj daemon %% work' and wait_event_type = %s""",
                    (seconds, wait),
                ).fetchone()
                return bool(row and row[0])

            def heartbeat() -> object:
                return watch.execute("select max(heartbeat_at) from pge_daemons").fetchone()[0]

            # rebuilt by the daemon: it copies the documents, then builds the slow index for them
            deploy(store, sources(Party=PARTY_EVENTS + "// changed\n"), lifecycles={"Party": "async"})
            wait_until(lambda: building_for(0, "Timeout"))
            beat = heartbeat()
            wait_until(lambda: building_for(3 * hooks.stall_seconds, "Timeout"))  # longer than /healthz allows
            assert hooks.health()[0], hooks.health()
            assert heartbeat() > beat, "the heartbeat went on during the build"
            wait_for_projections(store, timeout=60)

            # stuck: a reader's lock on the view holds the swap off
            with psycopg.connect(dsn) as reader:
                reader.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table)))
                deploy(store, sources(Party=PARTY_EVENTS + "// again\n"), lifecycles={"Party": "async"})
                wait_until(lambda: building_for(3 * hooks.stall_seconds, "Lock"))
                healthy, said = hooks.health()
                assert not healthy and said.startswith("no round or page for"), said
            wait_until(lambda: hooks.health()[0])  # the reader is gone: the swap, and the loop, go on
            wait_for_projections(store, timeout=60)
        finally:
            worker.stop()
            thread.join(timeout=30)


def test_metrics_and_healthz_refuse_a_request_naming_another_host(dsn: str) -> None:
    """DNS rebinding: a page elsewhere cannot read a loopback metrics server under a name of its own (421),
    the dashboard's rule (jsproj.loopback); requests naming it are answered."""
    import http.client

    hooks = DaemonMetrics()
    with hooks.serve(Daemon(dsn, poll_interval=0.05, hooks=hooks), "127.0.0.1", 0) as server:

        def status(path: str, host: str) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            try:
                conn.request("GET", path, headers={"Host": host})
                return conn.getresponse().status
            finally:
                conn.close()

        for path in ("/metrics", "/healthz"):
            assert status(path, "evil.example:80") == 421
            assert status(path, f"evil.example:{server.port}") == 421
        assert status("/metrics", f"localhost:{server.port}") == 200
        assert status("/metrics", f"127.0.0.1:{server.port}") == 200
        assert status("/healthz", f"localhost:{server.port}") == 503, "answered: not connected yet"
