"""A closed sandbox's worker process serves the next sandbox with a new V8 isolate: nothing of the
projections before it is reachable, and a worker stopped by a limit is never reused."""

from __future__ import annotations

import pytest

from jsproj import errors
from jsproj.runtime.projections import Projections
from jsproj.runtime.sandbox import IDLE_WORKERS, Sandbox

KEEPER = """
var stash = [];
projections.aggregate('Keeper').by({
  $init: function () { return { n: 0 }; },
  Secret: function (state, evt) { state.n += 1; stash.push(evt.text); }
});
"""
SPY = """
projections.aggregate('Spy').by({
  Other: function (state) { state.seen = typeof stash === 'undefined' ? null : stash; state.keeper = typeof Keeper; }
});
"""
RECORD = ('[{"position": 1, "streamId": "s", "streamType": "S", "version": 1, "timestamp": "2026-01-01T00:00:00.000Z",'
          ' "event": {"$type": "Secret", "$id": "e1", "text": "the password"}}]')  # fmt: skip


def test_the_next_sandbox_gets_the_worker_process_with_a_new_isolate() -> None:
    with Projections([{"file": "Keeper.js", "source": KEEPER}]) as keeper:
        keeper.apply(RECORD, {"Keeper": {"Keeper": None}})
        # An isolate keeps a routed batch (its events) for the apply that follows, across loads too.
        keeper.sandbox.call("route", f'{{"events":{RECORD},"batch":1,"options":{{}}}}')
        pid = keeper.sandbox.worker_pid
    with Projections([{"file": "Spy.js", "source": SPY}]) as spy:
        assert spy.sandbox.worker_pid == pid, "the worker process was reused"
        assert spy.names == ["Spy"]
        with pytest.raises(errors.StaleBatchError):  # the batch, and the event in it, went with the isolate
            spy.sandbox.call("apply", '{"batch":1,"documents":{"Spy":{"Spy":null}},"options":{}}')
        result = spy.apply(RECORD.replace("Secret", "Other"), {"Spy": {"Spy": None}})
        assert result.changes["Spy"].upserts == {"Spy": {"seen": None, "keeper": "undefined"}}


def test_in_one_isolate_a_routed_batch_outlives_a_load() -> None:
    """What the test above relies on: the same isolate would have answered."""
    with Sandbox() as sandbox:
        sandbox.load([{"file": "Keeper.js", "source": KEEPER}])
        sandbox.call("route", f'{{"events":{RECORD},"batch":1,"options":{{}}}}')
        sandbox.load([{"file": "Spy.js", "source": SPY}])
        assert sandbox.call("apply", '{"batch":1,"documents":{},"options":{}}') == {"changes": {}, "errors": []}


def test_a_worker_stopped_by_a_limit_is_not_reused() -> None:
    loop = "projections.aggregate('Loop').by({ Go: function () { for (;;) {} } });"
    with Projections([{"file": "Loop.js", "source": loop}], timeout=0.5) as looping:
        pid = looping.sandbox.worker_pid
        with pytest.raises(errors.SandboxTimeoutError):
            looping.apply(RECORD.replace("Secret", "Go"), {"Loop": {"Loop": None}})
    with Projections([{"file": "Spy.js", "source": SPY}], timeout=0.5) as spy:
        assert spy.sandbox.worker_pid not in (None, pid)


def test_at_most_a_few_workers_wait() -> None:
    sandboxes = [Sandbox(timeout=7.0) for _ in range(IDLE_WORKERS + 2)]
    pids = set()
    for sandbox in sandboxes:
        sandbox.call("evaluate", '{"code": "1"}')
        pids.add(sandbox.worker_pid)
    for sandbox in sandboxes:
        sandbox.close()
    again = [Sandbox(timeout=7.0) for _ in range(IDLE_WORKERS + 2)]
    for sandbox in again:
        sandbox.call("evaluate", '{"code": "1"}')
    reused = {sandbox.worker_pid for sandbox in again} & pids
    for sandbox in again:
        sandbox.close()
    assert len(reused) == IDLE_WORKERS
