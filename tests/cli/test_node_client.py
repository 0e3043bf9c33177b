"""The Node client package (js/client, @jsproj/client): its node tests against a real store, its
declarations compiled by TypeScript, and both npm packages packed and installed in an empty folder.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from clihelp import QUEST
from jsproj.engine.projections import read_folder
from jsproj.follow.engine import Lease
from jsproj.follow.subscriber import LOCK_CLASS
from jsproj.follow.subscriptions import subscribe
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore

from conformance_hosts import LANGUAGES, engine_params, require_language
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "js" / "client"
NODE = shutil.which("node")
NPM = shutil.which("npm")


def as_url(dsn: str) -> str:
    """A libpq keyword DSN as the URL the pg driver reads (a socket folder goes in ?host=)."""
    parts = psycopg.conninfo.conninfo_to_dict(dsn)
    return (f"postgresql://{quote(str(parts['user']))}@/{quote(str(parts['dbname']))}"
            f"?host={quote(str(parts['host']))}&port={parts['port']}")  # fmt: skip


@pytest.mark.parametrize("engine", engine_params(["plpython", *LANGUAGES]))  # make test-fast: one engine
def test_the_client_passes_its_node_tests_against_a_real_store(dsn: str, engine: str) -> None:
    """Every in-database engine: the client appends with SQL, so inline projections run in the database."""
    assert NODE, "node is not on the PATH"
    assert (CLIENT / "node_modules" / "pg").is_dir(), "make install runs npm ci in js/client"
    if engine in LANGUAGES:
        require_language(dsn, engine)
    with EventStore(dsn, max_size=1) as store:
        deploy(store, read_folder(QUEST / "projections"), engine=engine, lifecycles={"Traveled": "inline"})
    # One file at a time: they share the database (client.test.js empties it once). Appends run the engine, so
    # client.test.js runs in each; reading and subscribing touch no engine code, so they run in one (PL/JS).
    files = sorted(str(path.relative_to(CLIENT)) for path in (CLIENT / "test").glob("*.test.js"))
    assert len(files) >= 3, files
    files = files if engine == "pljs" else ["test/client.test.js"]
    done = subprocess.run([NODE, "--test", "--test-concurrency=1", *files], cwd=CLIENT, capture_output=True, text=True,
                          timeout=300, check=False, env={"PATH": str(Path(NODE).parent), "JSPROJ_TEST_DSN": as_url(dsn)})  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    counts = dict(re.findall(r"^# (pass|fail|skipped|todo) (\d+)$", done.stdout, re.M))
    assert counts["fail"] == "0" and counts["skipped"] == "0" and int(counts["pass"]) >= (24 if len(files) > 1 else 8)


# A Node loop over subscription "shared" until caught up: what it was handed, as JSON.
NODE_LOOP = """
const { connect } = require('.');
(async () => {
  const store = connect({ dsn: process.env.JSPROJ_TEST_DSN });
  const seen = [];
  for await (const { event } of store.subscribe('shared', { eventTypes: ['Tick'], untilCaughtUp: true })) seen.push(event.data.n);
  console.log(JSON.stringify(seen));
  await store.close();
})();
"""


# A Node loop over subscription "shared" that says "waiting" once it waits for the lease (then exits).
NODE_WAITER = """
const { connect } = require('.');
(async () => {
  const subscription = connect({ dsn: process.env.JSPROJ_TEST_DSN }).subscribe('shared', { pollInterval: 0.05 });
  subscription[Symbol.asyncIterator]().next();
  const deadline = Date.now() + 20000;
  while (!subscription.waiting && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  console.log(subscription.waiting ? 'waiting' : 'not waiting');
  process.exit(0);
})();
"""


# Live folds in Node of every Quest stream, as JSON {id: document}.
NODE_LIVE = """
const { connect } = require('.');
(async () => {
  const store = connect({ dsn: process.env.JSPROJ_TEST_DSN });
  const folded = {};
  for (const id of ['quest-1', 'quest-2', 'quest-3', 'quest-4']) folded[id] = await store.live('Party', id);
  console.log(JSON.stringify(folded));
  await store.close();
})();
"""


def test_node_live_folds_load_the_deployed_upcasters(dsn: str) -> None:
    """The client folds with the deployed files, those of upcasters alone too (pge_deployed_files)."""
    case = ROOT / "tests" / "conformance" / "upcasting"
    with EventStore(dsn, max_size=1) as store:
        deploy(store, read_folder(case / "projections"), lifecycles={"Party": "live"})
        store.append_all([json.loads(line) for line in (case / "events.jsonl").read_text("utf-8").splitlines()])
    env = {"PATH": str(Path(NODE or "node").parent), "JSPROJ_TEST_DSN": as_url(dsn)}
    done = subprocess.run([NODE or "node", "-e", NODE_LIVE], cwd=CLIENT, capture_output=True, text=True, timeout=60,
                          check=False, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads((case / "expected.json").read_text("utf-8"))["views"]["Party"]


def test_python_runners_and_node_loops_go_on_from_each_others_checkpoint(dsn: str) -> None:
    def ticks(numbers: range) -> list[dict[str, object]]:
        return [{"id": f"tick-{n % 2}", "type": "Clock", "data": [{"$type": "Tick", "n": n}, {"$type": "Tock"}]}
                for n in numbers]  # fmt: skip

    def node(script: str) -> str:
        env = {"PATH": str(Path(NODE or "node").parent), "JSPROJ_TEST_DSN": as_url(dsn)}
        done = subprocess.run([NODE or "node", "-e", script], cwd=CLIENT, capture_output=True, text=True, timeout=60,
                              check=False, env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def node_loop() -> list[int]:
        return list(json.loads(node(NODE_LOOP)))

    seen: list[int] = []
    with EventStore(dsn, max_size=1) as store:
        python = subscribe(store, "shared", lambda event, conn: seen.append(event.data["n"]), event_types=["Tick"])
        store.append_all(ticks(range(3)))
        assert python.run(until_caught_up=True) and seen == [0, 1, 2]
        store.append_all(ticks(range(3, 5)))
        assert node_loop() == [3, 4]
        store.append_all(ticks(range(5, 6)))
        assert python.run(until_caught_up=True) and seen == [0, 1, 2, 5]
        assert node_loop() == []
        python.start()  # holds the lease while it runs
        try:
            with store.connection() as conn:
                held = "select count(*) from pg_locks where locktype = 'advisory' and classid = %s and granted"
                wait_until(lambda: conn.execute(held, (LOCK_CLASS,)).fetchone() == (1,), deadline=20)
            assert node(NODE_WAITER) == "waiting", "a Node loop waits while a Python runner holds the name"
        finally:
            python.stop()
        with store.connection() as conn:
            assert conn.execute("select events from pge_subscriptions where name = 'shared'").fetchone() == (6,)


def test_node_subscriptions_take_the_lease_python_runners_take() -> None:
    """One consumer per name whichever the language: both take it by the store's pge_subscription_lease (the
    advisory lock (LOCK_CLASS, hashtext(schema.name)), as the store's owner: docs/deploy.md#advisory-locks)."""
    source = (CLIENT / "subscription.js").read_text("utf-8")
    assert f"const LOCK_CLASS = {LOCK_CLASS};" in source
    assert "pge_subscription_lease($1, true)" in source and "pge_subscription_lease($1, false)" in source
    assert "pg_try_advisory_lock" not in source and "pg_advisory_unlock" not in source
    lease = Lease.subscription("shared")
    assert "pge_subscription_lease" in repr(lease.take_query) and "pge_subscription_lease" in repr(lease.release_query)


@pytest.mark.slow
def test_the_declarations_describe_real_use() -> None:
    done = subprocess.run([str(CLIENT / "node_modules" / ".bin" / "tsc"), "-p", str(CLIENT / "test" / "types")],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("folder", "name"), [(ROOT / "js", "@jsproj/projections"), (CLIENT, "@jsproj/client")])
def test_each_npm_package_packs_and_works_installed_in_an_empty_folder(tmp_path: Path, folder: Path, name: str) -> None:
    assert NPM, "npm is not on the PATH"
    packed = subprocess.run([NPM, "pack", "--silent", "--pack-destination", str(tmp_path)], cwd=folder,
                            capture_output=True, text=True, timeout=300, check=True).stdout.split()[-1]  # fmt: skip
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "app", "version": "1.0.0", "private": True}))
    subprocess.run([NPM, "install", "--silent", "--no-audit", "--no-fund", str(tmp_path / packed)], cwd=app,
                   capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    check = ("const m = require(process.argv[1]); const names = Object.keys(m).concat(Object.getOwnPropertyNames(m));"
             "console.log(JSON.stringify({projectStream: typeof m.projectStream, connect: typeof m.connect,"
             " live: typeof (m.EventStore && m.EventStore.prototype.live)}))")  # fmt: skip
    done = subprocess.run(
        [NODE or "node", "-e", check, name], cwd=app, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    shape = json.loads(done.stdout)
    if name == "@jsproj/projections":
        assert shape["projectStream"] == "function"
    else:
        assert shape == {"projectStream": "undefined", "connect": "function", "live": "function"}
    assert (app / "node_modules" / name / ("index.d.ts")).is_file(), "the declarations ship with the package"
