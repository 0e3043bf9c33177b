"""A closed sandbox's worker process serves the next sandbox with a new V8 isolate: nothing of the
projections before it is reachable, and a worker stopped by a limit is never reused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.engine.sandbox import IDLE_WORKERS, Sandbox
from jsproj.engine.wire import read_frame, write_frame

from projections import KEEPER, SPY

pytestmark = pytest.mark.slow  # V8 worker processes started, recycled and killed


@pytest.fixture(autouse=True)
def no_waiting_workers() -> Iterator[None]:
    """No worker of an earlier test waits: the next sandbox takes the one waiting longest, and these tests name
    which one that is."""
    from jsproj.engine import sandbox as module

    with module._IDLE_LOCK:
        waiting = module._IDLE.pop(None, [])
    for idle in waiting:
        idle.finalizer()
    yield


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


def test_a_worker_made_for_other_limits_serves_the_next_sandbox_with_its_own() -> None:
    loop = "projections.aggregate('Loop').by({ Go: function () { for (;;) {} } });"
    hoard = "projections.aggregate('Hoard').by({ Go: function (s) { var a = []; for (;;) a.push({ n: a.length }); } });"
    with Sandbox(timeout=30.0, memory_limit=512 * 1024 * 1024) as generous:
        generous.call("evaluate", '{"code": "1"}')
        pid = generous.worker_pid
    with Projections([{"file": "Loop.js", "source": loop}], timeout=0.3) as looping:
        assert looping.sandbox.worker_pid == pid, "the waiting worker was taken, not a new process started"
        with pytest.raises(errors.SandboxTimeoutError, match=r"time limit of 0\.3 s"):
            looping.apply(RECORD.replace("Secret", "Go"), {"Loop": {"Loop": None}})
    with Sandbox(timeout=30.0, memory_limit=512 * 1024 * 1024) as generous:
        generous.call("evaluate", '{"code": "1"}')
        pid = generous.worker_pid
    with Projections([{"file": "Hoard.js", "source": hoard}], timeout=30, memory_limit=32 * 1024 * 1024) as hoarding:
        assert hoarding.sandbox.worker_pid == pid
        with pytest.raises(errors.SandboxMemoryError, match="memory limit of 32 MB"):
            hoarding.apply(RECORD.replace("Secret", "Go"), {"Hoard": {"Hoard": None}})


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


SLOW = '{"code": "(function () { for (var i = 0; i < 6e8; i++) {} return \\"A-secret\\"; })()"}'


@pytest.fixture
def interrupt_after() -> Iterator[None]:
    """SIGALRM raises KeyboardInterrupt (as Ctrl-C does) in the host, mid-call; restored afterwards."""
    previous = signal.signal(signal.SIGALRM, signal.default_int_handler)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def interrupted_call(sandbox: Sandbox) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    with pytest.raises(KeyboardInterrupt):
        sandbox.call("evaluate", SLOW)


@pytest.mark.usefixtures("interrupt_after")
def test_an_interrupted_call_never_hands_its_answer_to_the_next_sandbox() -> None:
    """Found by an adversarial review: the answer of a call the host gave up on stayed in the pipe."""
    first = Sandbox(timeout=5.0)
    first.call("evaluate", '{"code": "1"}')
    interrupted_call(first)
    interrupted_call(first)
    first.close()
    for name in "BCD":
        with Sandbox(timeout=5.0) as sandbox:
            one = sandbox.call("evaluate", f'{{"code": "\\"{name}-1\\""}}')
            two = sandbox.call("evaluate", f'{{"code": "\\"{name}-2\\""}}')
            assert (one["value"], two["value"]) == (f'"{name}-1"', f'"{name}-2"')


@pytest.mark.usefixtures("interrupt_after")
def test_after_an_interrupted_call_the_same_sandbox_answers_its_own_calls() -> None:
    with Sandbox(timeout=5.0) as sandbox:
        sandbox.call("evaluate", '{"code": "1"}')
        interrupted_call(sandbox)
        assert sandbox.call("evaluate", '{"code": "\\"mine\\""}')["value"] == '"mine"'


@pytest.mark.parametrize("request_name", ["recycle", "renew", "limits"])
def test_the_requests_that_ready_a_worker_are_not_operations_a_caller_can_send(request_name: str) -> None:
    with Sandbox() as sandbox, pytest.raises(errors.EngineError, match="not an engine operation"):
        sandbox.call(request_name, "1000 17000000")


def test_concurrent_closes_keep_at_most_the_pool_size_waiting() -> None:
    import threading

    from jsproj.engine import sandbox as module

    sandboxes = [Sandbox(timeout=6.5) for _ in range(IDLE_WORKERS + 4)]
    for each in sandboxes:
        each.call("evaluate", '{"code": "1"}')
    start = threading.Barrier(len(sandboxes))

    def close(each: Sandbox) -> None:
        start.wait()
        each.close()

    threads = [threading.Thread(target=close, args=(each,)) for each in sandboxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(module._IDLE[None]) == IDLE_WORKERS


def test_a_worker_whose_memory_stayed_high_is_not_kept() -> None:
    fill = "projections.aggregate('Fill').by({ Go: function (s) { s.keep = []; for (var i = 0; i < 1500000; i++) s.keep.push({ i: i }); s.keep = null; } });"
    record = RECORD.replace("Secret", "Go")
    with Projections([{"file": "Fill.js", "source": fill}], timeout=20) as filling:
        filling.apply(record, {"Fill": {"Fill": None}})
        pid, rss, fresh = filling.sandbox.worker_pid, filling.sandbox._worker_rss(), filling.sandbox._fresh_rss
    from jsproj.engine import sandbox as module

    # (whether it waits for the next sandbox: any sandbox may take any waiting worker, the one waiting longest first)
    kept = pid in {idle.proc.pid for idle in module._IDLE.get(None, [])}
    assert kept == (rss is not None and rss <= fresh + module.RECYCLE_RSS_SLACK)


def test_a_worker_whose_host_goes_away_mid_answer_exits_and_never_lingers() -> None:
    """A host killed while its worker writes a large answer: the worker's write fails (a broken pipe) and it
    ends itself with os._exit, never through the interpreter's teardown, whose freeing of the isolate could
    hang for good and leave an orphan process."""
    # The worker module as `python -m` runs it, with an exit hook that says when the interpreter's teardown runs.
    start = ("import atexit, runpy, sys; atexit.register(lambda: sys.stderr.write('TEARDOWN')); "
             "sys.argv[1:] = ['10', str(256 * 1024 * 1024)]; runpy.run_module('jsproj.engine.worker', run_name='__main__')")  # fmt: skip
    worker = subprocess.Popen([sys.executable, "-c", start],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert worker.stdin and worker.stdout and worker.stderr
    try:
        assert read_frame(worker.stdout) == b'{"ok": "ready"}'
        code = json.dumps({"code": "'x'.repeat(4 * 1024 * 1024)"})  # an answer far larger than a pipe holds
        write_frame(worker.stdin, b"evaluate\n" + code.encode())
        worker.stdin.flush()
        worker.stdout.close()  # the host is gone before it reads the answer
        assert worker.wait(timeout=60) == 1, "it ended itself"
        said = worker.stderr.read().decode()
        assert "BrokenPipeError" in said and "TEARDOWN" not in said, said
    finally:
        if worker.poll() is None:
            worker.kill()
