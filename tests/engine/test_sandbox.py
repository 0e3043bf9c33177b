"""The sandbox: what projection code can reach, and what happens when it misbehaves.

Everything here runs real V8 in the real worker process.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from jsproj import errors
from jsproj.engine.projections import Projections

# What a standard V8 context offers; anything else reachable from projection
# code would be a host object.
ECMASCRIPT_GLOBALS = {
    "Object", "Function", "Array", "Number", "parseFloat", "parseInt", "Infinity", "NaN", "undefined",
    "Boolean", "String", "Symbol", "Date", "Promise", "RegExp", "Error", "AggregateError", "EvalError",
    "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError", "globalThis", "JSON", "Math",
    "Intl", "ArrayBuffer", "Uint8Array", "Int8Array", "Uint16Array", "Int16Array", "Uint32Array",
    "Int32Array", "BigUint64Array", "BigInt64Array", "Uint8ClampedArray", "Float32Array", "Float64Array",
    "Float16Array", "DataView", "Map", "BigInt", "Set", "WeakMap", "WeakSet", "Proxy", "Reflect",
    "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "unescape", "eval",
    "isFinite", "isNaN", "console", "Iterator", "Temporal", "SuppressedError", "DisposableStack",
    "AsyncDisposableStack",
    # removed by lockdown.js, but var-declared ones stay as undefined properties:
    "setTimeout", "clearTimeout", "__timer_manager",
    # the host's frozen entry point (route/apply/normalize of the loaded projections only):
    "__jsprojCall",
}  # fmt: skip

PROBE = """
projections.aggregate('Probe').by({
  Probe: function (state) {
    state.types = {
      process: typeof process, require: typeof require, fetch: typeof fetch, XMLHttpRequest: typeof XMLHttpRequest,
      setTimeout: typeof setTimeout, WebAssembly: typeof WebAssembly, SharedArrayBuffer: typeof SharedArrayBuffer,
      Deno: typeof Deno, Bun: typeof Bun, jsproj: typeof jsproj, python: typeof python, pyodide: typeof pyodide,
      Promise: typeof Promise, globalPromise: typeof globalThis.Promise, queueMicrotask: typeof queueMicrotask,
      plv8: typeof plv8, pljs: typeof pljs, Temporal: typeof Temporal
    };
    state.globals = Object.getOwnPropertyNames(globalThis);
    try { state.requireFs = require('fs') === undefined ? 'undefined' : 'loaded'; }
    catch (e) { state.requireFs = e.message; }
    try { state.requireChildProcess = require('child_process') === undefined ? 'undefined' : 'loaded'; }
    catch (e) { state.requireChildProcess = e.message; }
    function attempt(fn) { try { return typeof fn(); } catch (e) { return e.message; } }
    state.fromFunction = attempt(function () { return Function('return this')().process; });
    state.viaConstructor = attempt(function () { return (function () {}).constructor('return typeof process')(); });
    state.viaGenerator = attempt(function () { return Object.getPrototypeOf(function* () {}).constructor('yield 1')(); });
    state.viaEval = attempt(function () { return globalThis.eval('1 + 1'); });
    state.entryPoint = typeof __jsprojCall;
    try { __jsprojCall('load', '[]'); state.load = 'loaded'; } catch (e) { state.load = e.name; }
  }
});
"""

LIMITS = """
projections.aggregate('Runaway').by({
  Loop: function () { while (true) {} },
  Grow: function () { var hoard = []; while (true) hoard.push(new Array(100000).fill(1)); },
  Huge: function () { var a = new Array(Math.pow(2, 24)).fill(0.5); return a.length; },   // 128 MB at once
  Recurse: function () { function again() { return again() + 1; } return again(); },
  Ping: function (state) { state.pings = (state.pings || 0) + 1; }
});
projections.aggregate('Calm').by({ $any: function (state) { state.n = (state.n || 0) + 1; } });
"""


def batch(*event_types: str) -> str:
    return json.dumps(
        [
            {
                "position": i + 1,
                "streamId": "s",
                "streamType": "S",
                "version": i + 1,
                "timestamp": "2026-01-01T00:00:00.000Z",
                "event": {"$type": t, "$id": f"00000000-0000-4000-8000-{i + 1:012d}"},
            }
            for i, t in enumerate(event_types)
        ]
    )


def run(projections: Projections, *event_types: str, only: list[str] | None = None) -> dict:
    events = batch(*event_types)
    routed = projections.route(events, only=only)
    documents = {name: dict.fromkeys(keys) for name, keys in routed.items()}
    result = projections.apply(events, documents, only=only)
    if result.errors:
        raise result.errors[0]
    return {name: change.upserts for name, change in result.changes.items()}


def wait_until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met before the deadline"
        time.sleep(0.01)


@pytest.fixture
def probe() -> Iterator[Projections]:
    with Projections([{"file": "Probe.js", "source": PROBE}]) as loaded:
        yield loaded


@pytest.fixture
def runaway() -> Iterator[Projections]:
    with Projections([{"file": "Runaway.js", "source": LIMITS}], timeout=1.0, memory_limit=64 * 1024 * 1024) as loaded:
        yield loaded


@pytest.fixture
def greedy() -> Iterator[Projections]:
    """As ``runaway``, with a time limit no busy machine reaches before a growing hoard fills 64 MB (at 1 s, one
    did: a time-limit error)."""
    with Projections([{"file": "Runaway.js", "source": LIMITS}], timeout=30.0, memory_limit=64 * 1024 * 1024) as loaded:
        yield loaded


def test_no_host_objects_file_system_network_or_process(probe: Projections) -> None:
    state = run(probe, "Probe")["Probe"]["Probe"]
    types = dict(state["types"])
    assert types.pop("require") == "function", "the file's own require, which resolves only the DSL"
    assert set(types.values()) == {"undefined"}, types
    assert set(state["globals"]) <= ECMASCRIPT_GLOBALS, set(state["globals"]) - ECMASCRIPT_GLOBALS
    assert state["entryPoint"] == "undefined", "the host's entry point is not in a file's scope"
    assert state["load"] == "TypeError", "projection code cannot replace the loaded projections"


def test_no_code_from_text(probe: Projections) -> None:
    """eval and every function constructor refuse: code made at run time would escape the checks of load time."""
    state = run(probe, "Probe")["Probe"]["Probe"]
    assert state["fromFunction"] == "the Function constructor is not available to projections"
    assert state["viaConstructor"] == "the Function constructor is not available to projections"
    assert state["viaGenerator"] == "the Function constructor is not available to projections"
    assert state["viaEval"] == "eval is not available to projections"


def test_require_of_anything_but_the_dsl_fails_with_a_clear_message(probe: Projections) -> None:
    state = run(probe, "Probe")["Probe"]["Probe"]
    assert 'require("fs") is not available to projections' in state["requireFs"]
    assert 'require("child_process") is not available' in state["requireChildProcess"]


@pytest.mark.parametrize(
    ("source", "line", "what"),
    [
        ("var x = 1;\nimport('fs').then(function () {});", 2, "import() is"),
        ("projections.aggregate('A').by({\n  A: async function (s) { s.n = 1; }\n});", 2, "async functions are"),
        ("var f = async () => 1;", 1, "async functions are"),
        ("var o = { async m() {} };", 1, "async functions are"),
        ("class C {\n\n  static async *g() {}\n}", 3, "async functions are"),
        ("var later = import /* comment */ ('x');", 1, "import() is"),
    ],
)
def test_async_functions_and_dynamic_import_are_refused_when_a_file_loads(source: str, line: int, what: str) -> None:
    with pytest.raises(errors.ProjectionDefinitionError) as caught:
        Projections([{"file": "Later.js", "source": source}])
    assert str(caught.value) == (
        f"Later.js:{line}: {what} not available to projections: a handler must finish its work before it returns"
    )


def test_the_words_async_and_import_are_fine_where_they_are_not_keywords() -> None:
    source = """
    // import('fs') in a comment, and async function in another
    var async = 1, words = ['async function', "import('x')", `async ${async}`], re = /async function|import\\(/;
    projections.aggregate('Words').by({
      Said: function (state, evt) {
        state.async = evt.async; state.import = evt['import']; state.n = async + words.length; state.re = re.test('import(');
        var o = { import: 1, async: 2, async3: 3 }; state.o = o.import + o.async + o.async3;
      }
    });"""
    with Projections([{"file": "Words.js", "source": source}]) as loaded:
        assert run(loaded, "Said")["Words"]["Words"] == {"n": 4, "re": True, "o": 6}


def test_require_fs_at_load_time_is_a_definition_error() -> None:
    with pytest.raises(errors.ProjectionDefinitionError, match=r"Sneaky\.js: require\(\"fs\"\) is not available"):
        Projections([{"file": "Sneaky.js", "source": "var fs = require('fs');"}])


def test_endless_loop_stops_at_the_time_limit_naming_the_projection(runaway: Projections) -> None:
    started = time.monotonic()
    with pytest.raises(errors.SandboxTimeoutError) as caught:
        run(runaway, "Loop")
    assert caught.value.projection == "Runaway"
    assert "time limit of 1 s" in str(caught.value)
    assert time.monotonic() - started < 30, "the call must not hang"
    assert run(runaway, "Ping")["Runaway"]["Runaway"] == {"pings": 1}, "the next call works"


def test_growing_allocation_stops_at_the_memory_limit(greedy: Projections) -> None:
    with pytest.raises(errors.SandboxMemoryError) as caught:
        run(greedy, "Grow")
    assert caught.value.projection == "Runaway"
    assert run(greedy, "Ping")["Runaway"]["Runaway"] == {"pings": 1}


def test_one_huge_allocation_is_a_memory_error_not_a_dead_host(runaway: Projections) -> None:
    # new Array(2**30).fill(0) makes V8 abort its process: the worker dies, the host does not.
    with pytest.raises(errors.SandboxMemoryError) as caught:
        run(runaway, "Huge")
    assert caught.value.projection == "Runaway"
    assert run(runaway, "Ping")["Runaway"]["Runaway"] == {"pings": 1}


def test_limit_errors_name_the_culprit_among_several_projections(runaway: Projections) -> None:
    with pytest.raises(errors.SandboxMemoryError) as caught:
        run(runaway, "Huge", only=["Calm", "Runaway"])
    assert caught.value.projection == "Runaway"


def test_endless_recursion_is_a_handler_error(runaway: Projections) -> None:
    with pytest.raises(errors.ProjectionHandlerError) as caught:
        run(runaway, "Recurse")
    assert caught.value.projection == "Runaway"
    assert "Maximum call stack size exceeded" in str(caught.value)


def test_endless_loop_at_load_time_names_the_file() -> None:
    with pytest.raises(errors.SandboxTimeoutError, match=r"projection file Spin\.js"):
        Projections([{"file": "Spin.js", "source": "while (true) {}"}], timeout=0.5)


def test_syntax_error_names_file_and_line() -> None:
    source = "projections.aggregate('A').by({\n  A: function () {}\n  B: 2\n});\n"
    with pytest.raises(errors.ProjectionSyntaxError) as caught:
        Projections([{"file": "Broken.js", "source": source}])
    assert caught.value.file == "Broken.js"
    assert caught.value.line == 3
    assert str(caught.value).startswith("Broken.js:3: SyntaxError:")


def test_a_source_cannot_close_the_wrapper_and_run_outside_it() -> None:
    escape = "}); globalThis.escaped = true; (function () {"
    with pytest.raises(errors.ProjectionSyntaxError):
        Projections([{"file": "Escape.js", "source": escape}])


def test_handler_error_names_projection_event_stream_and_js_stack() -> None:
    source = (
        "projections.aggregate('Fragile').by({\n  Boom: function () {\n    throw new RangeError('kaboom');\n  }\n});"
    )
    with Projections([{"file": "Fragile.js", "source": source}]) as loaded:
        with pytest.raises(errors.ProjectionHandlerError) as caught:
            run(loaded, "Ping", "Boom")
    error = caught.value
    assert (error.projection, error.event_type, error.stream_id, error.position) == ("Fragile", "Boom", "s", 2)
    assert error.event_id == "00000000-0000-4000-8000-000000000002"
    assert "Fragile.js:3:" in error.stack
    assert "jsproj/lib" not in error.stack, "the stack shows the projection's frames, not the engine's"
    assert str(error).endswith("RangeError: kaboom")


def test_a_killed_worker_is_replaced_and_the_projections_reloaded(probe: Projections) -> None:
    run(probe, "Probe")
    pid = probe.sandbox.worker_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: probe.sandbox.worker_pid is None)
    assert "Probe" in run(probe, "Probe")
    assert probe.sandbox.worker_pid not in (None, pid)
    assert probe.sandbox.restarts == 1


def test_a_sandbox_made_before_fork_works_in_the_child(probe: Projections) -> None:
    run(probe, "Probe")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover -- runs in the child
        try:
            os.close(read)
            ok = "Probe" in run(probe, "Probe") and probe.sandbox.worker_pid is not None
            os.write(write, b"ok" if ok else b"bad")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        answer = reader.read()
    os.waitpid(child, 0)
    assert answer == b"ok"
    assert "Probe" in run(probe, "Probe"), "the parent's worker still works"


def test_console_output_is_kept_for_the_host() -> None:
    source = "console.log('loaded'); projections.aggregate('Talky').by({ A: function (s, e) { console.info('saw', e.$type, {n: 1}); } });"
    with Projections([{"file": "Talky.js", "source": source}]) as loaded:
        run(loaded, "A")
        logs = loaded.sandbox.drain_logs()
    assert [(entry["level"], entry["projection"], entry["message"]) for entry in logs] == [
        ("log", None, "loaded"),
        ("info", "Talky", 'saw A {"n":1}'),
    ]


def test_limits_are_validated() -> None:
    from jsproj.engine.sandbox import Sandbox

    for bad in (0, float("nan"), float("inf"), -1, 3601):
        with pytest.raises(ValueError, match="timeout must be a number of seconds > 0 and at most 3600"):
            Sandbox(timeout=bad)
    with pytest.raises(ValueError, match="memory_limit"):
        Sandbox(memory_limit=1024)
