"""Review 4: what a store could leave in the V8 context the next store of its key gets (docs/sandbox.md, "One context,
store after store"): code that runs once its calls are over (traps and getters the engine might touch while it lets
go of the store), jsproj's own shared built-ins (a sort's scratch space), memory kept by what the context keeps
(the symbol registry, V8's shared error-stack accessor), and an upcaster's reach."""

from __future__ import annotations

import threading
import uuid

import pytest

from jsproj.engine.projections import Projections

from projections import record

pytestmark = pytest.mark.slow

MB = 1024 * 1024
NEXT = "projections.aggregate('Next').by({ Go: function (s) { s.ok = true; } });"


@pytest.fixture
def key() -> str:
    return f"review4 {uuid.uuid4().hex}"


# Every trap and getter loops, but only once the file is loaded and no call runs (the clock throws then): code the
# engine runs while it disposes of the store, renews the context, or formats output later.
LINGER = r"""
var loaded = false;
function outside() { if (!loaded) return false; try { Date.now(); return false; } catch (e) { return true; } }
function trap(name) { return function () { if (outside()) { for (;;) {} } return Reflect[name].apply(null, arguments); }; }
var h = {};
['get', 'has', 'ownKeys', 'getOwnPropertyDescriptor', 'set', 'deleteProperty', 'defineProperty', 'getPrototypeOf',
 'apply'].forEach(function (n) { h[n] = trap(n); });
var evil = new Proxy(function () {}, h);
console.log(evil);
var handler = function (s) { s.n = 1; console.log(evil); };
Object.defineProperty(handler, 'name', { get: function () { if (outside()) { for (;;) {} } return 'x'; } });
projections.aggregate('Linger').by(new Proxy({ Go: handler, $init: function () { return {}; } }, h));
module.exports = evil;
loaded = true;
"""


def test_nothing_of_a_store_runs_after_its_calls_nor_holds_the_next_store(key: str) -> None:
    lingering = Projections([{"file": "Linger.js", "source": LINGER}], context=key, timeout=1)
    assert lingering.apply(record("Go"), {"Linger": {"Linger": None}}).changes["Linger"].upserts == {"Linger": {"n": 1}}
    result: dict = {}

    def close_then_next() -> None:
        lingering.close()
        with Projections([{"file": "Next.js", "source": NEXT}], context=key, timeout=1) as following:
            result["changes"] = following.apply(record("Go"), {"Next": {"Next": None}}).changes

    thread = threading.Thread(target=close_then_next, daemon=True)
    thread.start()
    thread.join(60)  # a deadline, not a measure: a hang fails
    assert not thread.is_alive()
    assert result["changes"]["Next"].upserts == {"Next": {"ok": True}}


SORTER = r"""
projections.aggregate('Sorter').by({ Go: function (s, e) {
  var a = []; for (var i = 0; i < 3000; i++) a.push(e.secret + i);
  a.sort(); a.sort(function (x, y) { return x < y ? -1 : x > y ? 1 : 0; });
  var o = {length: 3000}; for (var j = 0; j < 3000; j += 2) o[j] = e.secret + 'o' + j;
  Array.prototype.sort.call(o);
  [e.secret + 'n1', e.secret + 'n2'].forEach(function (x) { x.normalize('NFD'); x.localeCompare('zz'); });
  Date.parse(e.secret); s.n = a.length;
}});
"""
SCAVENGER = r"""
projections.aggregate('Scavenger').by({ Go: function (s) {
  var seen = new Set();
  function note(v) { if (typeof v === 'string' && v.indexOf('hunter') >= 0) seen.add(v); }
  [function (arr) { return function (x, y) { note(x); note(y); arr.length = 0; return 0; }; },
   function (arr) { return function (x, y) { note(x); note(y); arr.length = 5000; return 1; }; },
   function (arr) { return function (x, y) { note(x); note(y); arr.push(1, 2, 3); return -1; }; },
   function (arr) { return function (x, y) { note(x); note(y); delete arr[0]; arr.length = 10; return x < y ? -1 : 1; }; }
  ].forEach(function (v) {
    var a = []; for (var i = 0; i < 100; i++) a.push(i % 7);
    try { a.sort(v(a)); } catch (e) {}
    for (var k = 0; k < a.length; k++) note(a[k]);
    var o = {length: 4000}; for (var j = 1; j < 50; j += 3) o[j] = j;
    try { Array.prototype.sort.call(o, v(o)); } catch (e) {}
    for (var k2 = 0; k2 < 4000; k2++) note(o[k2]);
  });
  s.seen = Array.from(seen).slice(0, 5);
}});
"""


def test_jsprojs_own_sort_keeps_nothing_of_a_store_for_the_next_comparator(key: str) -> None:
    with Projections([{"file": "Sorter.js", "source": SORTER}], context=key) as sorter:
        sorter.apply(record("Go", {"secret": "hunter2"}), {"Sorter": {"Sorter": None}})
        pid = sorter.sandbox.worker_pid
    with Projections([{"file": "Scavenger.js", "source": SCAVENGER}], context=key) as scavenger:
        assert scavenger.sandbox.worker_pid == pid
        state = scavenger.apply(record("Go"), {"Scavenger": {"Scavenger": None}}).changes["Scavenger"].upserts
    assert state == {"Scavenger": {"seen": []}}


# What the context keeps for ever, filled to ~45 MB: V8's symbol registry, the shared error-stack accessor, private
# fields stamped on frozen built-ins (a class whose base returns another object).
HOARDER = r"""
var mode = '%s';
class Base { constructor(o) { return o; } }
class Stamp extends Base { #x; constructor(o, v) { super(o); this.#x = v; } }
projections.aggregate('Hoarder').by({ Go: function (s) {
  var chunk = 'x'.repeat(1024 * 1024 - 64);
  for (var i = 0; i < 45; i++) {
    var str = JSON.parse(JSON.stringify(chunk + i + '#'));
    if (mode === 'symbol') Symbol.for(str);
    else if (mode === 'stack') Object.getOwnPropertyDescriptor(new Error(), 'stack').get['k' + i] = str;
    else try { new Stamp(i %% 2 ? Object.prototype : Array.prototype, [str]); } catch (e) {}
  }
  s.done = true;
}});
"""
NEEDY = r"""
projections.aggregate('Needy').by({ Go: function (s) {
  var keep = []; for (var i = 0; i < 85; i++) keep.push(new Array(1024 * 128).fill(i));  // ~85 MB of a 100 MB limit
  s.n = keep.length;
}});
"""


@pytest.mark.parametrize("mode", ["symbol", "stack", "private"])
def test_memory_a_store_leaves_in_the_context_never_makes_the_next_store_fail(key: str, mode: str) -> None:
    with Projections([{"file": "Hoarder.js", "source": HOARDER % mode}], context=key, memory_limit=100 * MB) as hoarder:
        hoarder.apply(record("Go"), {"Hoarder": {"Hoarder": None}})
    with Projections([{"file": "Needy.js", "source": NEEDY}], context=key, memory_limit=100 * MB) as needy:
        assert needy.apply(record("Go"), {"Needy": {"Needy": None}}).changes["Needy"].upserts == {"Needy": {"n": 85}}


UPCASTER = r"""
projections.upcast('Secret').from(1).by(function (evt) {
  try { Object.getOwnPropertyDescriptor(new Error('x'), 'stack').get.upcast = evt.text; } catch (e) {}
});
projections.aggregate('Quiet').by({ Secret: function (s) { s.n = 1; } });
"""
PEEKER = r"""
projections.aggregate('Peeker').by({ $any: function (s) {
  var d = Object.getOwnPropertyDescriptor(new Error('x'), 'stack');
  s.seen = d && d.get && d.get.upcast !== undefined ? d.get.upcast : null;
}});
"""


def test_an_upcaster_leaves_nothing_for_the_next_store(key: str) -> None:
    with Projections([{"file": "Upcasters.js", "source": UPCASTER}], context=key) as first:
        first.apply(record("Secret", {"text": "tenant-a-iban"}), {"Quiet": {"Quiet": None}})
    with Projections([{"file": "Peeker.js", "source": PEEKER}], context=key) as second:
        state = second.apply(record("Other"), {"Peeker": {"Peeker": None}}).changes["Peeker"].upserts["Peeker"]
    assert state == {"seen": None}
