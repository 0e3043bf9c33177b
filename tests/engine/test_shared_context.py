"""Sandboxes of one context key take one worker's V8 context store after store, each with an engine of its own
(docs/sandbox.md, "One context, store after store"): nothing one store's projections did there is reachable by
the next store's, at load time or in handlers; a worker stopped by a limit is never renewed; a key is never
taken by another."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from jsproj import errors
from jsproj.engine import sandbox as module
from jsproj.engine.projections import Projections
from jsproj.engine.sandbox import Sandbox, keep_warm

from projections import KEEPER, SPY, record

pytestmark = pytest.mark.slow  # V8 worker processes started, renewed and killed

ISOLATION = Path(__file__).resolve().parents[1] / "conformance" / "isolation-shared-builtins" / "projections"
# What a store's file could read while it loads, before any event: what the store before left running.
AT_LOAD = """
var seen = [typeof RegExp.$1 === 'string' ? RegExp.$1 : null, Math.random.leak, Date.shared,
            (function () { try { return new Date(0).constructor.now(); } catch (e) { return 'no clock'; } })()];
projections.aggregate('AtLoad').by({ Other: function (state) { state.seen = seen; } });
"""
LOOP = "projections.aggregate('Loop').by({ Secret: function () { for (;;) {} } });"


@pytest.fixture
def key() -> str:
    """A context key of this test's own (waiting workers are kept per key, in this process)."""
    return f"test {uuid.uuid4().hex}"


def store(key: str, name: str, source: str, **limits: float) -> Projections:
    return Projections([{"file": f"{name}.js", "source": source}], context=key, **limits)  # type: ignore[arg-type]


def test_sandboxes_of_one_key_take_its_worker_one_engine_after_another(key: str) -> None:
    with store(key, "Keeper", KEEPER) as keeper:
        keeper.apply(record("Secret", {"text": "the password"}), {"Keeper": {"Keeper": None}})
        keeper.sandbox.call(
            "route", f'{{"events":{record("Secret", {"text": "the password"})},"batch":1,"options":{{}}}}'
        )
        pid = keeper.sandbox.worker_pid
    with store(key, "Spy", SPY) as spy:
        assert spy.sandbox.worker_pid == pid, "the worker, and its context, serve the next store"
        assert spy.sandbox.engines == 2, "a second engine in the same context, not a new isolate"
        assert spy.names == ["Spy"]
        with pytest.raises(errors.StaleBatchError):  # the batch, and the event in it, went with its engine
            spy.sandbox.call("apply", '{"batch":1,"documents":{"Spy":{"Spy":null}},"options":{}}')
        result = spy.apply(record("Other"), {"Spy": {"Spy": None}})
    assert result.changes["Spy"].upserts == {"Spy": {"seen": None, "keeper": "undefined"}}


def test_a_store_leaves_nothing_on_what_the_context_shares_for_the_next_one(key: str) -> None:
    """The conformance case isolation-shared-builtins, its writer and reader as two stores of one context."""
    writer_source = (ISOLATION / "A_Writer.js").read_text("utf-8")
    with store(key, "Writer", writer_source) as writer:
        result = writer.apply(record("Go", {"secret": "hunter2"}), {"Writer": {"Writer": None}})
        assert result.changes["Writer"].upserts == {"Writer": {"tried": 1}}  # only its own regular expression ran
        pid = writer.sandbox.worker_pid
    with store(key, "Reader", (ISOLATION / "B_Reader.js").read_text("utf-8")) as reader:
        assert reader.sandbox.worker_pid == pid
        state = reader.apply(record("Go"), {"Reader": {"Reader": None}}).changes["Reader"].upserts["Reader"]
    assert state["seen"] == [] and state["frozen"] == [True, True, True]
    with store(key, "Writer", writer_source) as writer:
        writer.apply(record("Go", {"secret": "hunter2"}), {"Writer": {"Writer": None}})
    with store(key, "AtLoad", AT_LOAD) as at_load:
        assert at_load.sandbox.worker_pid == pid
        state = at_load.apply(record("Other"), {"AtLoad": {"AtLoad": None}}).changes["AtLoad"].upserts["AtLoad"]
    assert state == {"seen": [None, None, None, "no clock"]}


def test_a_store_whose_files_failed_to_load_leaves_the_context_to_the_next(key: str) -> None:
    with pytest.raises(errors.ProjectionSyntaxError):
        store(key, "Broken", "projections.aggregate('Broken').by({ Secret: function ( { } });")
    with store(key, "Spy", SPY) as spy:
        assert spy.apply(record("Other"), {"Spy": {"Spy": None}}).changes["Spy"].upserts["Spy"]["keeper"] == "undefined"


def test_a_worker_a_limit_stopped_is_never_renewed(key: str) -> None:
    with store(key, "Loop", LOOP, timeout=0.5) as looping:
        pid = looping.sandbox.worker_pid
        with pytest.raises(errors.SandboxTimeoutError):
            looping.apply(record("Secret", {"text": "x"}), {"Loop": {"Loop": None}})
    with store(key, "Spy", SPY, timeout=0.5) as spy:
        assert spy.sandbox.worker_pid not in (None, pid)


def test_a_key_is_never_taken_by_a_sandbox_of_another_key_or_of_none(key: str) -> None:
    with store(key, "Keeper", KEEPER) as keeper:
        pid = keeper.sandbox.worker_pid
    for other in (f"{key} other", None):
        with Sandbox(context=other) as sandbox:
            sandbox.load([{"file": "Spy.js", "source": SPY}])
            assert sandbox.worker_pid != pid
    with Sandbox() as plain:
        plain.load([{"file": "Spy.js", "source": SPY}])
    with Sandbox() as plain:
        plain.load([{"file": "Spy.js", "source": SPY}])
        assert plain.engines == 1  # a worker that served a sandbox of no key has a new isolate for the next
    with store(key, "Spy", SPY) as spy:
        assert spy.sandbox.worker_pid == pid  # still waiting for its own key


def test_keep_warm_starts_the_workers_a_host_takes_in_turn(key: str) -> None:
    with store(key, "Spy", SPY):
        pass  # one waits already: keep_warm adds the others
    assert keep_warm(3, context=key) == 2
    warm = {idle.proc.pid for idle in module._IDLE[key]}
    assert len(warm) == 3
    assert keep_warm(3, context=key) == 0  # they wait already
    sandboxes = [store(key, "Spy", SPY) for _ in range(3)]
    try:
        assert {each.sandbox.worker_pid for each in sandboxes} == warm
    finally:
        for each in sandboxes:
            each.close()
    assert len(module._IDLE[key]) == 3  # kept, not 4 or 1
