"""A lockdown stopped midway (js/lib/lockdown.js) is taken up again and ends as one never stopped.

In PLV8 and PL/JS the context's lockdown runs in the first engine call of a
backend, which a cancel or a statement_timeout may stop anywhere: nothing can
catch that. The next call takes it up again with the same engine
(sql/engines/javascript.sql). Here real V8 stops it at points spread over
its own measured length (the in-database bundle, in mini-racer, whose time
limit stops V8 as PLV8's does), and real PLV8 and PL/JS have the first call
of new sessions stopped by statement_timeout at points spread over its length.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jsproj.engine.bundle import database_bundle, lib_dir
from jsproj.engine.projections import Projections
from jsproj.engine.simulation import simulate
from jsproj.engine.worker import V8_FLAGS
from jsproj.projections.deploy import deploy
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore

from conformance_hosts import LANGUAGES, NODE, NOW, engine_params, require_language

LOCK = json.dumps({"ops": [], "writable": [], "keep": []})
POINTS = 12

#: The world a lockdown leaves, as projection code would find it: every object reachable from the global
#: object (and its prototypes), frozen or not, each property's attributes in their order; and what refuses.
FINGERPRINT = r"""(function () {
  var seen = new Set(), out = [], queue = [[globalThis, 'globalThis']];
  while (queue.length) {
    var item = queue.shift(), object = item[0], path = item[1];
    if (seen.has(object)) continue;
    seen.add(object);
    out.push(path + (Object.isFrozen(object) ? ' frozen' : '') + (Object.isExtensible(object) ? ' extensible' : ''));
    Reflect.ownKeys(object).forEach(function (key) {
      var d = Object.getOwnPropertyDescriptor(object, key), name = path + '.' + String(key);
      var flags = ['writable', 'enumerable', 'configurable'].filter(function (k) { return d[k]; }).join(',');
      out.push(name + ' ' + flags + ('value' in d ? ' ' + typeof d.value : ' accessor'));
      ['value', 'get', 'set'].forEach(function (k) {
        var v = d[k];
        if (v !== null && (typeof v === 'object' || typeof v === 'function')) queue.push([v, name + (k === 'value' ? '' : '@' + k)]);
      });
    });
    var proto = Object.getPrototypeOf(object);
    if (proto !== null) queue.push([proto, path + '.__proto__']);
  }
  function refused(run) { try { run(); return 'ran'; } catch (e) { return e.name + ': ' + e.message; } }
  out.push(refused(function () { eval('1'); }), refused(function () { Function('return 1')(); }),
    refused(function () { (async function () {}).constructor('return 1'); }),
    refused(function () { (function* () {}).constructor('return 1'); }),
    refused(function () { Promise.resolve(1).then(function () {}); }), refused(function () { new RegExp('x', 'v'); }),
    refused(function () { Date.now(); }), refused(function () { globalThis.stash = 1; }));
  return JSON.stringify(out);
})()"""


@contextmanager
def engine_context() -> Iterator[tuple[Any, Any]]:
    """A new V8 context with the in-database engine evaluated in it, as PLV8's first call makes one."""
    from py_mini_racer import MiniRacer, init_mini_racer

    init_mini_racer(flags=V8_FLAGS, ignore_duplicate_init=True)
    racer = MiniRacer()
    try:
        yield racer, racer.eval(f"({database_bundle()[0]})(null)")
    finally:
        racer.close()


def stop_lockdown(racer: Any, host: Any, seconds: float) -> bool:
    """Whether a lockdown given ``seconds`` was stopped. A time limit that ends just as the call does stops
    mini-racer's next call instead (its JSTerminatedException, a JSEvalException; the lockdown entry answers
    every error as text): a call of nothing takes that, not the test's."""
    from py_mini_racer import JSEvalException

    try:
        host["lockdown"](LOCK, timeout_sec=seconds)
        stopped = False
    except JSEvalException:  # (JSTimeoutException, or terminated as the time limit ended)
        stopped = True
    for _ in range(3):
        try:
            racer.eval("0")
            break
        except JSEvalException:
            continue
    return stopped and not host["realm"]["lockedDown"]


def test_a_lockdown_stopped_at_any_point_ends_as_one_never_stopped() -> None:

    with engine_context() as (racer, host):
        started = time.perf_counter()
        assert json.loads(host["lockdown"](LOCK)) == {"ok": True}
        length = time.perf_counter() - started
        whole = racer.eval(FINGERPRINT)
    stopped_in = set()
    for point in range(1, POINTS):
        with engine_context() as (racer, host):
            if stop_lockdown(racer, host, length * point / POINTS):  # (else done, if stopped on its way back)
                realm = host["realm"]
                stopped_in.add(realm.get("lockdownSteps", 0))
                realm["busy"] = False  # what javascript.sql's next call does: the stopped call has ended
                assert json.loads(host["lockdown"](LOCK)) == {"ok": True}, f"stopped at {point}/{POINTS}"
            assert racer.eval(FINGERPRINT) == whole, f"stopped at {point}/{POINTS} of {length:.3f} s"
    assert stopped_in, "no point stopped the lockdown: the test proved nothing"


COUNTER = "projections.aggregate('Counter').by({ Add: function (s) { s.n = (s.n || 0) + 1; } });"
ADD = """select pge_append('{"id": "c", "type": "Counter", "data": {"$type": "Add"}}')"""


@pytest.mark.parametrize("engine", engine_params(LANGUAGES))
def test_a_first_call_stopped_anywhere_leaves_a_session_whose_next_call_works(
    store: EventStore, dsn: str, engine: str
) -> None:
    """Found by CI: a statement_timeout that landed in PLV8's lockdown left a context every later call of the
    session failed in ("Cannot redefine property: constructor"), until it reconnected."""
    require_language(dsn, engine)
    deploy(store, [{"file": "Counter.js", "source": COUNTER}], engine=engine)
    with psycopg.connect(dsn, autocommit=True) as session:
        started = time.perf_counter()
        session.execute(ADD)
        first = time.perf_counter() - started  # the engine's start, the file's load and the call
    added, cancelled = 1, 0
    for point in range(1, POINTS):
        with psycopg.connect(dsn, autocommit=True) as session:
            session.execute(f"set statement_timeout = {max(1, round(first * 1000 * point / POINTS))}")
            try:
                session.execute(ADD)
                added += 1
            except psycopg.errors.QueryCanceled:
                cancelled += 1
            session.execute("set statement_timeout = 0")
            session.execute(ADD)  # the next call of the same session
            added += 1
    assert fetch_view(store, "Counter") == {"Counter": {"n": added}}
    assert cancelled, "no first call was stopped: the test proved nothing"


def test_a_lockdown_cut_between_moving_a_property_away_and_back_finishes_the_move() -> None:
    """Found by an adversarial review (helper 27, PL/JS): a stop between the delete and the define that move a
    built-in's property to its place (Object.defineProperty among them) lost it, and every later call failed
    ("not a function"). The cut is made here on a lockdown really stopped in that step (pinSurface)."""
    with engine_context() as (racer, host):
        started = time.perf_counter()
        assert json.loads(host["lockdown"](LOCK)) == {"ok": True}
        length = time.perf_counter() - started
        whole = racer.eval(FINGERPRINT)
    # (a move can be cut only once the step has taken what moving uses: then it is cut, or it was already)
    cut = """(function (realm) {
      if (!realm.lockdownMade || !realm.lockdownMade.reflection) return false;
      if (!realm.lockdownMove) {
        realm.lockdownMove = { object: Object, key: 'defineProperty',
          descriptor: Object.getOwnPropertyDescriptor(Object, 'defineProperty') };
        delete Object.defineProperty;
      }
      return true;
    })"""
    for point in range(1, 4 * POINTS):  # (pinSurface is the longest step: most points land in it)
        with engine_context() as (racer, host):
            if stop_lockdown(racer, host, length * point / (4 * POINTS)):
                realm = host["realm"]
                if realm.get("lockdownSteps", 0) != PIN_SURFACE or not racer.eval(cut)(realm):
                    continue
                realm["busy"] = False
                assert json.loads(host["lockdown"](LOCK)) == {"ok": True}
                assert racer.eval(FINGERPRINT) == whole
                return
    pytest.fail("no stop landed in pinSurface: the test proved nothing")


PIN_SURFACE = 6  # the lockdown's step that moves properties (js/lib/lockdown.js)

#: Where one projection tried to leave data for another: projections.DELETE (review 8), the built-ins
#: Object.prototype's accessors return (review 9, every host), a stack overflow's error (review 9, QuickJS's
#: InternalError).
CHANNELS = """function overflow() { try { (function again() { again(); })(); } catch (x) { return x; } }
var channels = [
  function () { var f = projections.DELETE.toString; return f.prototype || f; },
  function () { return projections.DELETE; },
  function () { return ({}).hasOwnProperty; },
  function () { return ({}).toString; },
  function () { return Object.getPrototypeOf(overflow()); },
  function () { return overflow().constructor; }
];"""
WRITER = (
    CHANNELS
    + """projections.projectEvent('Secret').named('Writer').by(function (e) {
  return { $id: e.k, result: channels.map(function (channel) {
    try { channel().smuggled = e.secret; return 'wrote'; } catch (x) { return 'refused'; }
  }) };
});"""
)
READER = (
    CHANNELS
    + """projections.projectEvent('Ping').named('Reader').by(function (e) {
  return { $id: e.k, seen: channels.map(function (channel) {
    var found = channel().smuggled; return found === undefined ? null : found; }) };
});"""
)
SMUGGLE = [{"id": "x", "type": "X", "data": {"$type": "Secret", "k": "w", "secret": "s3cret"}},
           {"id": "x", "type": "X", "data": {"$type": "Ping", "k": "r"}}]  # fmt: skip
REFUSED = {"$id": "w", "result": ["refused"] * 6}
NOTHING = {"$id": "r", "seen": [None] * 6}


def test_no_built_in_carries_one_projections_data_to_another_in_the_python_and_node_hosts(tmp_path: Path) -> None:
    """Found by an adversarial review (review 9): the real Object.prototype.hasOwnProperty (and the other
    functions the lockdown's accessors return) was never frozen: a Writer left an event's secret on it."""
    files = [{"file": "A_Writer.js", "source": WRITER}, {"file": "B_Reader.js", "source": READER}]
    with Projections(files) as loaded:
        views = simulate(loaded, SMUGGLE, now=NOW)
    assert views["views"]["Writer"]["w"] == REFUSED and views["views"]["Reader"]["r"] == NOTHING
    for file in files:
        (tmp_path / file["file"]).write_text(file["source"])
    (tmp_path / "events.json").write_text(json.dumps(SMUGGLE))
    node = subprocess.run([NODE, str(lib_dir().parent / "bin" / "simulate.js"), str(tmp_path), str(tmp_path / "events.json"),
                           "--now", NOW], capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert node.returncode == 0, node.stderr
    assert json.loads(node.stdout)["views"] == views["views"]


@pytest.mark.parametrize("order", ["first", "later"])
@pytest.mark.parametrize("engine", engine_params(LANGUAGES))
def test_no_engine_of_a_context_hands_its_files_anything_one_can_write_and_another_read(
    store: EventStore, dsn: str, engine: str, order: str
) -> None:
    """Found by adversarial reviews. Review 8: the engine a context's lockdown hardened froze
    projections.DELETE whole, but an engine made after it (another store's served first in the backend, a
    redeploy, a lockdown taken up again) left its toString's prototype open. Review 9, in the first engine too:
    the built-ins Object.prototype's accessors return, and (PL/JS) a stack overflow's InternalError. One
    projection wrote an event's data there and another read it."""
    require_language(dsn, engine)
    with EventStore(dsn, schema="first", max_size=1) as first:
        first.migrate()
        deploy(first, [{"file": "Counter.js", "source": COUNTER}], engine=engine)
    files = [{"file": "A_Writer.js", "source": WRITER}, {"file": "B_Reader.js", "source": READER}]
    deploy(store, files, engine=engine)
    with psycopg.connect(dsn, autocommit=True) as session:
        if order == "later":
            session.execute(ADD.replace("pge_append", "first.pge_append"))  # the context's first engine: first's
        for message in SMUGGLE:
            session.execute("select pge_append(%s::jsonb)", (json.dumps(message),))
    assert fetch_view(store, "Writer", "w") == REFUSED
    assert fetch_view(store, "Reader", "r") == NOTHING
