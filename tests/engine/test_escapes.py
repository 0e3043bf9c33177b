"""Sandbox escape attempts from projection code, each shown to be contained (real V8, real worker).

Attacks whose outcome is the same in every host (Node included) are
conformance cases (tests/conformance/isolation-*, error-*); here are the
ones about the sandbox itself, run in every sandboxed host: the Python
worker, and PostgreSQL (plpython3u) where they concern the database.
The basics — no require but the DSL's, no process, fetch or Python objects,
no Function-constructor route to them, time and memory limits — are in
test_sandbox.py; the database side (definitions owned by their role,
internal functions that run only deployed code) in test_deploy.py.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.engine.simulation import simulate
from jsproj.projections.deploy import deploy
from jsproj.projections.views import export_views, fetch_view
from jsproj.store.sync import EventStore
from test_sandbox import run

from conformance_hosts import LANGUAGES, engine_params, require_language
from projections import counting

POLLUTER = """
projections.aggregate('Polluter').by({
  Go: function (state) {
    var attempts = {
      objectProto: function () { Object.prototype.polluted = 'yes'; },
      arrayPush: function () { Array.prototype.push = function () { return 'hijacked'; }; },
      jsonParse: function () { JSON.parse = function () { return { hijacked: true }; }; },
      protoViaLiteral: function () { ({}).__proto__.viaProto = 'yes'; },
      functionProto: function () { (function () {}).constructor.prototype.call = null; },
      errorProto: function () { Error.prototype.toString = function () { return 'hijacked'; }; },
      globalStash: function () { globalThis.stash = { secret: 'from Polluter' }; },
      defineOnGlobal: function () { Object.defineProperty(globalThis, 'stash2', { value: 1 }); },
      mathRandom: function () { Math.random = function () { return 4; }; },
      iteratorProto: function () { Object.getPrototypeOf([][Symbol.iterator]()).next = function () { return { done: true }; }; }
    };
    state.refused = [];
    Object.keys(attempts).forEach(function (name) {
      try { attempts[name](); } catch (e) { state.refused.push(name); }
    });
  }
});
"""

VICTIM = """
projections.aggregate('Victim').by({
  Go: function (state) {
    var seen = [];
    if (({}).polluted !== undefined || ({}).viaProto !== undefined) seen.push('Object.prototype');
    var list = []; if (list.push(1) !== 1) seen.push('Array.prototype.push');
    if (JSON.parse('{"a": 1}').a !== 1) seen.push('JSON.parse');
    if (typeof Function.prototype.call !== 'function') seen.push('Function.prototype.call');
    if (String(new Error('x')) !== 'Error: x') seen.push('Error.prototype.toString');
    if (typeof stash !== 'undefined' || typeof stash2 !== 'undefined') seen.push('a global');
    if (Math.random() === 4) seen.push('Math.random');
    var n = 0; for (var x of [1, 2, 3]) n += x; if (n !== 6) seen.push('array iteration');
    state.seen = seen;
    state.calls = (state.calls || 0) + 1;
  }
});
"""

OVERRIDES = """
projections.projectView('Words').identifiedBy(function (evt) { return evt.word; }).by({
  Said: function (state, evt) {
    var own = Object.prototype.hasOwnProperty.call(state, evt.word);
    state[evt.word] = (own ? state[evt.word] : 0) + 1;      // e.g. "constructor", "toString", "hasOwnProperty"
    state.toString = 'own toString';
    var e = new TypeError('original'); e.message = 'changed'; e.name = 'Renamed';
    state.error = e.name + ': ' + e.message;
  }
});
"""


@pytest.mark.parametrize("host", engine_params(["plpython", *LANGUAGES]))
def test_pollution_stashes_and_reading_others_state_fail_in_the_database_hosts(host: str, dsn: str) -> None:
    files = {"Polluter.js": POLLUTER, "Victim.js": VICTIM, "Reader.js": READER}
    out = run_in(host, files, [{"id": "g", "type": "G", "data": [{"$type": "Go"}, {"$type": "Go"}]}], dsn)
    assert out["aggregates"]["Victim"] == {"seen": [], "calls": 2}
    assert out["aggregates"]["Reader"]["found"] == [] and out["aggregates"]["Reader"]["metaWritable"] is False
    python = run_in("python", files, [{"id": "g", "type": "G", "data": [{"$type": "Go"}, {"$type": "Go"}]}], dsn)
    assert out["aggregates"]["Polluter"] == python["aggregates"]["Polluter"], "refused alike in every host"


def test_prototype_pollution_and_global_stashes_do_not_reach_other_projections_or_later_calls() -> None:
    with Projections([{"file": "Polluter.js", "source": POLLUTER}, {"file": "Victim.js", "source": VICTIM}]) as p:
        first = run(p, "Go")
        assert first["Victim"]["Victim"]["seen"] == [], "another projection in the same batch saw the pollution"
        again = run(p, "Go", "Go")  # later calls, same sandbox
        assert again["Victim"]["Victim"]["seen"] == []
        alone = run(p, "Go", only=["Victim"])
        assert alone["Victim"]["Victim"]["seen"] == []


def test_ordinary_objects_keep_own_properties_named_like_builtins() -> None:
    """Freezing the built-ins must not break data: documents may have keys such as constructor or toString."""
    with Projections([{"file": "Words.js", "source": OVERRIDES}]) as p:
        records = [
            {"position": n + 1, "streamId": "s", "streamType": "S", "version": n + 1,
             "timestamp": "2026-01-01T00:00:00.000Z", "event": {"$type": "Said", "$id": f"e{n}", "word": word}}
            for n, word in enumerate(["constructor", "toString", "hasOwnProperty", "constructor"])
        ]  # fmt: skip
        page = json.dumps(records)
        result = p.apply(page, {"Words": dict.fromkeys(p.route(page)["Words"])})
        assert not result.errors, result.errors
        words = result.changes["Words"].upserts
        assert words["constructor"]["constructor"] == 2
        assert words["hasOwnProperty"]["hasOwnProperty"] == 1
        assert words["toString"]["toString"] == "own toString"  # the later assignment in the same handler
        assert words["constructor"]["error"] == "Renamed: changed"


READER = """
var mine = { private: "mine" };
projections.aggregate('Owner').by({ Go: function (state) { state.private = 'owner only'; mine.seen = true; } });
projections.aggregate('Reader').by({
  Go: function (state, evt, meta) {
    var found = [];
    var names = Object.getOwnPropertyNames(globalThis);
    for (var i = 0; i < names.length; i++) {
      try { if (JSON.stringify(globalThis[names[i]]).indexOf('owner only') >= 0) found.push(names[i]); } catch (e) {}
    }
    state.found = found;
    state.metaWritable = (function () { try { meta.streamId = 'x'; return meta.streamId === 'x'; } catch (e) { return false; } })();
    state.callerChain = (function () { try { return typeof arguments.callee.caller; } catch (e) { return 'refused'; } })();
  }
});
"""


def test_a_projection_cannot_read_another_projections_state() -> None:
    with Projections([{"file": "Reader.js", "source": READER}]) as p:
        out = run(p, "Go")
        assert out["Owner"]["Owner"]["private"] == "owner only"
        assert out["Reader"]["Reader"]["found"] == []
        assert out["Reader"]["Reader"]["metaWritable"] is False


HUGE = """
projections.projectView('Huge').identifiedBy(function (evt) { return evt.key; }).by({
  Big: function (state) { var s = 'x'; while (s.length < 256 * 1024 * 1024) s += s; state.blob = s; },
  Many: function (state) { for (var i = 0; i < 5000000; i++) state['k' + i] = i; }
});
projections.aggregate('Small').by({ Big: function (state) { state.n = (state.n || 0) + 1; },
                                    Many: function (state) { state.n = (state.n || 0) + 1; } });
"""


@pytest.mark.slow  # hundreds of MB built and refused
@pytest.mark.parametrize("event_type", ["Big", "Many"])
def test_huge_outputs_are_refused_and_the_host_survives(event_type: str) -> None:
    with Projections([{"file": "Huge.js", "source": HUGE}], timeout=20, memory_limit=64 * 1024 * 1024) as p:
        page = json.dumps([{"position": 1, "streamId": "s", "streamType": "S", "version": 1,
                            "timestamp": "2026-01-01T00:00:00.000Z",
                            "event": {"$type": event_type, "$id": "e1", "key": "k"}}])  # fmt: skip
        # The memory limit is watched on the worker's RSS: a handler may be done before the watcher looks (a
        # 256 MB string built by doubling, on a busy machine); its document is then refused as too large to store.
        with pytest.raises((errors.SandboxLimitError, errors.DocumentError)) as caught:
            result = p.apply(page, {"Huge": {"k": None}, "Small": {"Small": None}})
            if result.errors:
                raise result.errors[0]
        refusals = ("memory limit", "time limit", "its JSON text is longer than 16777216 characters")
        assert any(refusal in caught.value.message for refusal in refusals), caught.value.message
        ok = p.apply(page, {"Small": {"Small": None}}, only=["Small"])  # the sandbox works for the next call
        assert ok.changes["Small"].upserts == {"Small": {"n": 1}}


# -- the same attacks in every sandboxed host: the Python worker and PostgreSQL (plpython3u) --

SANDBOXED_HOSTS = ["python", "plpython", *LANGUAGES]


def run_in(host: str, files: dict[str, str], messages: list[dict], dsn: str, *, timeout: float = 10.0) -> dict:
    """Run projection files over append messages in one sandboxed host; the views and aggregates it stores."""
    sources = [{"file": name, "source": source} for name, source in files.items()]
    if host == "python":
        with Projections(sources, timeout=timeout) as loaded:
            return dict(simulate(loaded, messages))
    if host in LANGUAGES:
        require_language(dsn, host)
    with EventStore(dsn, max_size=2) as store:
        deploy(store, sources, engine=host)
        for message in messages:
            store.append(message)
        return export_views(store)


JOBS = r"""
// Every way this world offers to leave work for later: none may exist.
var ran = [];
projections.aggregate('Attacker').by({
  Schedule: function (state) {
    var routes = {
      globalPromise: function () { return globalThis.Promise.resolve(); },
      promiseParameter: function () { return Promise.resolve(); },
      fromAsync: function () { return Array['fromAsync']([1]); },   // (named plainly, the file is refused at load)
      asyncStack: function () { return new AsyncDisposableStack().disposeAsync(); },
      asyncByConstructor: function () { return Function('return (async function () {})()')(); },
      asyncByEval: function () { return globalThis.eval('(async function () {})()'); },
      asyncByGenerator: function () {
        var G = Object.getPrototypeOf(function* () {}).constructor;
        return G('yield (async function () {})()')().next().value;
      },
      queueMicrotask: function () { queueMicrotask(function () {}); return { then: function (f) { f(); } }; },
      timer: function () { return globalThis.setTimeout(function () {}, 0); }
    };
    state.scheduled = [];
    Object.keys(routes).forEach(function (name) {
      try {
        var promise = routes[name]();
        if (promise && typeof promise.then === 'function' && name !== 'queueMicrotask') {
          promise.then(function () { ran.push(name); var x = 0; for (var i = 0; i < 1e10; i++) x += i; });
          state.scheduled.push(name);
        } else if (promise !== undefined) {
          state.scheduled.push(name);
        }
      } catch (e) { /* refused */ }
    });
  },
  Check: function (state) { state.ran = ran.slice(); }
});
projections.aggregate('Victim').by({ $any: function (state) { state.n = (state.n || 0) + 1; } });
"""


@pytest.mark.parametrize("host", SANDBOXED_HOSTS)
def test_no_projection_can_leave_work_for_later_to_be_charged_to_another(host: str, dsn: str) -> None:
    messages = [{"id": "a", "type": "Attack", "data": {"$type": "Schedule"}},
                {"id": "a", "data": {"$type": "Other"}},
                {"id": "a", "data": {"$type": "Check"}}]  # fmt: skip
    out = run_in(host, {"Jobs.js": JOBS}, messages, dsn, timeout=5)
    assert out["aggregates"]["Attacker"] == {"scheduled": [], "ran": []}
    assert out["aggregates"]["Victim"] == {"n": 3}, "the calls after the attack ran within their own time"


DETECTOR = """
// What a file can learn about its host while it loads, kept for its handler.
var seen = {
  frozenGlobal: Object.isFrozen(globalThis),
  frozenPrototype: Object.isFrozen(Object.prototype),
  globals: Object.getOwnPropertyNames(globalThis).filter(function (n) { return globalThis[n] !== undefined; }).sort(),
  types: [typeof Promise, typeof plpy, typeof plv8, typeof pljs, typeof setTimeout, typeof Date.now, typeof Intl],
  thisIsGlobal: (function () { return this; })() === globalThis,
  clock: (function () { try { return Date.now(); } catch (e) { return e.message.slice(0, 40); } })(),
  random: (function () { try { return Math.random(); } catch (e) { return e.message.slice(0, 40); } })()
};
var stash = (function () { try { globalThis.shared = 1; return typeof globalThis.shared; } catch (e) { return 'refused'; } })();
projections.aggregate('Detector').by({ Look: function (state) { state.seen = seen; state.stash = stash; } });
"""


READS_STASH = """
var found = typeof shared === 'undefined' ? 'nothing' : shared;
projections.aggregate('Reader').by({ Look: function (state) { state.found = found; } });
"""


@pytest.mark.parametrize("host", engine_params(list(LANGUAGES)))
def test_a_file_cannot_tell_a_javascript_language_from_check_and_simulate(host: str, dsn: str) -> None:
    """The same world in PLV8 and PL/JS as in the Python host: a file's globalThis is its scope's, the same
    pinned globals in every host (surface.js), frozen."""
    messages = [{"id": "d", "type": "Look", "data": {"$type": "Look"}}]
    files = {"A_Detector.js": DETECTOR, "B_Reader.js": READS_STASH}
    python, database = (run_in(where, files, messages, dsn) for where in ("python", host))
    assert database == python
    assert database["aggregates"]["Reader"] == {"found": "nothing"}
    assert not {"plv8", "pljs", "plpy"} & set(database["aggregates"]["Detector"]["seen"]["globals"])


def test_a_file_cannot_tell_the_database_from_check_and_simulate(dsn: str) -> None:
    """Files load in the same locked-down world in every sandboxed host: host detection gains nothing,
    and nothing one file leaves on the global object reaches the next."""
    messages = [{"id": "d", "type": "Look", "data": {"$type": "Look"}}]
    files = {"A_Detector.js": DETECTOR, "B_Reader.js": READS_STASH}
    python, database = (run_in(host, files, messages, dsn) for host in ("python", "plpython"))
    assert python == database
    assert python["aggregates"]["Reader"] == {"found": "nothing"}
    seen = python["aggregates"]["Detector"]["seen"]
    assert seen["frozenGlobal"] and seen["frozenPrototype"] and not seen["thisIsGlobal"], "strict mode: no sloppy this"
    assert seen["types"] == ["undefined", "undefined", "undefined", "undefined", "undefined", "function", "undefined"]
    assert seen["clock"].startswith("Date.now() is not available while") and seen["random"].startswith("Math.random()")
    assert python["aggregates"]["Detector"]["stash"] == "refused", "strict mode: writing a frozen global throws"


SPIN_AT_LOAD = """
var x = 0;
for (var i = 0; i < 3e7; i++) x = (x * 31 + i) | 0;     // past 0.01 s in every host (a multiply and an add after
// another: 4 cycles or more each), well within 60 s
projections.aggregate('Spin').by({ Go: function (state) { state.x = x & 0; } });
"""


@pytest.mark.slow
def test_load_time_code_has_the_time_limit_of_handlers_in_the_database(store: EventStore, dsn: str) -> None:
    """(PLV8 and PL/JS: tests/conformance/test_languages.py) The limit is wall-clock time: 0.3 s, far past what
    a busy machine may take off a process, so the limit ends the file's own loop and the message names it."""
    deploy(store, [{"file": "Spin.js", "source": SPIN_AT_LOAD}], engine="plpython", timeout=60)
    with psycopg.connect(dsn, autocommit=True) as owner:  # its owner makes it spin forever, behind check's back
        owner.execute("update pge_projection_definitions set source = %s", (SPIN_AT_LOAD.replace("i < 3e7", "true"),))
        owner.execute("update pge_engine set generation = generation + 1")
    engine_limits(dsn, timeout=0.3)  # the owner's to choose, never a session's
    with psycopg.connect(dsn, autocommit=True) as session:
        for _ in range(2):  # the second answers from the first's failure, without running the file again
            with pytest.raises(psycopg.Error) as caught:
                session.execute("""select pge_append('{"id": "s", "type": "T", "data": {"$type": "Go"}}')""")
            assert caught.value.sqlstate == "JP500"
            assert caught.value.diag.message_primary == "projection file Spin.js ran past the time limit of 0.3 s"
        assert session.execute("select 1").fetchone() == (1,), "the backend survives"
    deploy(store, [{"file": "Spin.js", "source": SPIN_AT_LOAD}], engine="plpython", timeout=60)  # mended
    engine_limits(dsn, timeout=60)
    store.append({"id": "s", "type": "T", "data": {"$type": "Go"}})  # a file that ends loads, and the store goes on
    assert fetch_view(store, "Spin") == {"Spin": {"x": 0}}


@pytest.mark.slow
def test_a_deploy_loads_its_files_in_the_database_under_its_own_time_limit(store: EventStore, dsn: str) -> None:
    """deploy(timeout=...) is the limit of its own load of the files in the database (before it commits), not the
    limit the store had: here one the file's load time is well past."""
    deploy(store, [{"file": "Spin.js", "source": SPIN_AT_LOAD.replace("3e7", "1")}], engine="plpython")
    engine_limits(dsn, timeout=0.01)
    report = deploy(store, [{"file": "Spin.js", "source": SPIN_AT_LOAD}], engine="plpython", timeout=60)
    assert report.changed == ["Spin"]
    with psycopg.connect(dsn) as owner:
        assert owner.execute("select timeout from pge_engine").fetchone() == (60,)


#: A py_mini_racer that takes 3 s to import, as on a server too busy to start V8 at once; then it is the real one.
SLOW_MINI_RACER = """
import os, sys, time

time.sleep(3)
sys.path.remove(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
del sys.modules[__name__]
import py_mini_racer  # the real one, further on the path: what importing this one gives
"""


@pytest.mark.slow
def test_the_database_workers_start_is_not_counted_in_the_time_limit(store: EventStore, dsn: str) -> None:
    """Starting plpython3u's V8 worker (Python, mini-racer, V8, the bundle, the lockdown) runs no projection code:
    however long it takes, past the time limit and its grace (0.5 s and 2 s here), the files load under the limit."""
    deploy(store, [{"file": "Count.js", "source": counting("Count")}], engine="plpython")
    with tempfile.TemporaryDirectory() as folder:
        package = Path(folder) / "py_mini_racer"
        package.mkdir()
        (package / "__init__.py").write_text(SLOW_MINI_RACER)
        for readable in (Path(folder), package):
            readable.chmod(0o755)  # by the server's OS user
        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute(
                "select pge_set_engine_settings(0.5, 256, %s || ':' || python_path) from pge_engine", (folder,)
            )
            owner.execute("""select pge_append('{"id": "s", "type": "T", "data": {"$type": "Go"}}')""")
    assert fetch_view(store, "Count") == {"Count": {"n": 1}}


def test_a_file_that_never_finishes_loading_is_stopped_by_the_limit_not_by_kill(store: EventStore, dsn: str) -> None:
    """Even one that never went through jsproj check (changed in the table by its owner)."""
    deploy(store, [{"file": "Spin.js", "source": SPIN_AT_LOAD.replace("3e7", "1")}], engine="plpython")
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("update pge_projection_definitions set source = 'while (true) {}'")
        owner.execute("update pge_engine set generation = generation + 1")
        owner.execute("select pge_set_engine_settings(0.5, 256, python_path) from pge_engine")
        with pytest.raises(psycopg.Error, match=r"projection file Spin\.js ran past the time limit of 0\.5 s"):
            owner.execute("""select pge_append('{"id": "s", "type": "T", "data": {"$type": "Go"}}')""")
        assert owner.execute("select count(*) from pge_events").fetchone() == (0,), "the append was rolled back"


@pytest.mark.parametrize("engine", engine_params(["plpython", *LANGUAGES]))
def test_a_load_the_session_stopped_is_run_again_by_the_next_call(store: EventStore, dsn: str, engine: str) -> None:
    """A cancel or the session's statement_timeout says nothing of the load (only jsproj's own limit does):
    the next call loads again, and is stopped again, rather than answered from the first.

    The session's first call starts the engine (in PLV8 and PL/JS: the context's lock-down) with no
    statement_timeout, so that the ones after stop in the file's load alone (a stop in the lock-down:
    test_lockdown_stopped.py)."""
    if engine != "plpython":
        require_language(dsn, engine)
    deploy(store, [{"file": "Spin.js", "source": SPIN_AT_LOAD.replace("3e7", "1")}], engine=engine, timeout=60)
    with psycopg.connect(dsn, autocommit=True) as session, psycopg.connect(dsn, autocommit=True) as owner:
        session.execute("""select pge_append('{"id": "s", "type": "T", "data": {"$type": "Go"}}')""")  # started
        owner.execute("update pge_projection_definitions set source = 'for (;;) {}'")  # never loads (not checked)
        owner.execute("update pge_engine set generation = generation + 1")
        session.execute("set statement_timeout = '300ms'")
        for _ in range(2):
            with pytest.raises(psycopg.errors.QueryCanceled):
                session.execute("""select pge_append('{"id": "s", "type": "T", "data": {"$type": "Go"}}')""")
        assert session.execute("select count(*) from pge_events").fetchone() == (1,), "only the first"


def engine_limits(dsn: str, *, timeout: float = 10, memory_limit: int = 256) -> None:
    """As the store's owner: the in-database engines' limits (seconds, MB), as deploy sets them."""
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("select pge_set_engine_settings(%s, %s, python_path) from pge_engine", (timeout, memory_limit))


HOARD_AT_LOAD = """
var hoard = [];
for (var i = 0; i < 300; i++) hoard.push(new Array(131072).fill(i));   // about 150 MB, kept
projections.aggregate('Hoard').by({ Go: function (state) { state.n = hoard.length; } });
"""


def test_load_time_code_has_the_memory_limit_of_handlers_in_every_sandboxed_host(store: EventStore, dsn: str) -> None:
    with pytest.raises(errors.SandboxMemoryError, match=r"^projection file Hoard\.js went past the memory limit"):
        Projections([{"file": "Hoard.js", "source": HOARD_AT_LOAD}], memory_limit=64 * 1024 * 1024)
    deploy(store, [{"file": "Hoard.js", "source": HOARD_AT_LOAD}], engine="plpython", memory_limit=1024 * 1024 * 1024)
    engine_limits(dsn, memory_limit=64)
    with psycopg.connect(dsn, autocommit=True) as session:
        with pytest.raises(psycopg.Error) as caught:
            session.execute("""select pge_append('{"id": "s", "type": "T", "data": {"$type": "Go"}}')""")
        assert caught.value.sqlstate == "JP500"
        assert caught.value.diag.message_primary == "projection file Hoard.js went past the memory limit"
        assert session.execute("select 1").fetchone() == (1,), "the backend survives"


KEEPER = r"""
// Keeps every state it is handed, and changes the ones it kept before, on later events and pages:
// none of those changes may reach a stored document (the daemon keeps documents across pages).
var kept = [];
projections.projectStream('Ledger').named('Keeper').by({
  Note: function (state, evt) {
    kept.forEach(function (old) { try { old.notes = ['tampered']; old.extra = 'tampered'; } catch (e) { /* revoked */ } });
    state.notes = (state.notes || []).concat([evt.text]);
    kept.push(state);
  }
}).async();
"""


@pytest.mark.parametrize("host", [*SANDBOXED_HOSTS, "daemon"])
def test_a_state_kept_by_projection_code_cannot_change_a_stored_document_later(host: str, dsn: str) -> None:
    messages = [{"id": f"l{n % 3}", "type": "Ledger", "data": {"$type": "Note", "text": f"t{n}"}} for n in range(12)]
    if host == "daemon":  # pages of 2 events: the sandbox hands the kept documents back, page after page
        from jsproj.follow.daemon import Daemon

        with EventStore(dsn, max_size=2) as store:
            deploy(store, [{"file": "Keeper.js", "source": KEEPER}])
            Daemon(dsn).run(until_caught_up=True)
            for message in messages:
                store.append(message)
            assert Daemon(dsn, page_size=2).run(until_caught_up=True)
            out = export_views(store)
    else:
        out = run_in(host, {"Keeper.js": KEEPER.replace(".async()", "")}, messages, dsn)
    expected = {f"l{k}": {"notes": [f"t{n}" for n in range(k, 12, 3)]} for k in range(3)}
    assert out["views"]["Keeper"] == expected


def workers_of(backend: int) -> list[int]:
    """The processes whose parent is PostgreSQL backend ``backend`` (the plpython3u engine's V8 worker)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:  # it ended meanwhile
            continue
        if fields.get("PPid", "").strip() == str(backend):
            found.append(int(status.parent.name))
    return found


def gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "State:\tZ" in status.read_text()


@pytest.mark.parametrize("end", ["closed", "terminated"])
def test_the_plpython_worker_ends_with_its_backend(store: EventStore, dsn: str, end: str) -> None:
    """However the backend ends (its session closed, or pg_terminate_backend), its V8 worker does not outlive it."""
    deploy(store, [{"file": "Spin.js", "source": SPIN_AT_LOAD.replace("3e7", "1")}], engine="plpython")
    session = psycopg.connect(dsn, autocommit=True)
    session.execute("""select pge_append('{"id": "s", "type": "T", "data": {"$type": "Go"}}')""")
    backend = session.info.backend_pid
    (worker,) = workers_of(backend)
    if end == "closed":
        session.close()
    else:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s)", (backend,))
        session.close()
    deadline = time.monotonic() + 30
    while not gone(worker):
        assert time.monotonic() < deadline, f"worker {worker} outlived its backend ({end})"
        time.sleep(0.02)  # polling the condition, with a deadline
