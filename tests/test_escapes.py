"""Sandbox escape attempts from projection code, each shown to be contained (real V8, real worker).

The basics — no require but the DSL's, no process, fetch or Python objects,
no Function-constructor route to them, time and memory limits — are in
test_sandbox.py; the database side (definitions owned by their role,
internal functions that run only deployed code) in test_deploy.py.
"""

from __future__ import annotations

import json

import pytest

from jsproj import errors
from jsproj.projections import Projections
from test_sandbox import run

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


@pytest.mark.parametrize("event_type", ["Big", "Many"])
def test_huge_outputs_are_refused_and_the_host_survives(event_type: str) -> None:
    with Projections([{"file": "Huge.js", "source": HUGE}], timeout=20, memory_limit=128 * 1024 * 1024) as p:
        page = json.dumps([{"position": 1, "streamId": "s", "streamType": "S", "version": 1,
                            "timestamp": "2026-01-01T00:00:00.000Z",
                            "event": {"$type": event_type, "$id": "e1", "key": "k"}}])  # fmt: skip
        with pytest.raises(errors.SandboxLimitError) as caught:
            result = p.apply(page, {"Huge": {"k": None}, "Small": {"Small": None}})
            if result.errors:
                raise result.errors[0]
        assert "memory limit" in caught.value.message or "time limit" in caught.value.message
        ok = p.apply(page, {"Small": {"Small": None}}, only=["Small"])  # the sandbox works for the next call
        assert ok.changes["Small"].upserts == {"Small": {"n": 1}}
