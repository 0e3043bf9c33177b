"""The V8 sandbox: projection code runs in a worker process under limits.

Projection JavaScript sees only the engine and the DSL: no file system,
network, process or Python objects. Every call has a time limit and a memory
limit; a call that passes one raises :class:`~jsproj.errors.SandboxLimitError`
and the next call gets a fresh V8 (the loaded projections are restored).
V8 runs in a child process (``jsproj.engine.worker``) because some allocations make
V8 abort its process: that must cost a worker, never the host. The worker is
started lazily, so a sandbox made before ``fork()`` is safe in the child.
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

from jsproj import errors
from jsproj.engine.wire import CONTROL, HEADER, LIMITS, RECYCLE, RENEW

DEFAULT_TIMEOUT = 10.0
#: The longest time limit of a call (seconds): an hour, also the in-database engines' (pge_engine).
MAX_TIMEOUT = 3600.0
DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024
STARTUP_TIMEOUT = 30.0
MAX_LOGS = 10_000
MB = 1024 * 1024
# A closed sandbox's worker process gets a new V8 isolate and waits for the next sandbox of the same context
# key (whatever its limits: it sends them): a start then costs a message instead of a Python process, the
# library and V8's set-up (~60 ms of wall time, ~0.3 s of CPU).
IDLE_WORKERS = 4
# A worker whose memory grew past this since it started is stopped rather than kept (V8 need not give
# a full heap back to the system when its isolate goes).
RECYCLE_RSS_SLACK = 64 * MB
WATCH_INTERVAL = 0.1
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: The operations run again once in a fresh V8 after a memory limit (Sandbox.call).
RETRIED = frozenset({"route", "apply"})
MEMORY = "SandboxMemoryError"


class _Idle:
    """A worker process between sandboxes; its finalizer stops the process if nobody takes it."""

    def __init__(
        self, proc: subprocess.Popen[bytes], stderr: Any, owner_pid: int, nonce: bytes, fresh_rss: int,
        limits: tuple[float, int],
    ) -> None:  # fmt: skip
        self.proc, self.stderr, self.owner_pid = proc, stderr, owner_pid
        self.nonce = nonce  # the ready answer names it: no other frame can pass for it
        self.fresh_rss = fresh_rss
        self.limits = limits  # (timeout, memory_limit) it has now
        self.finalizer = weakref.finalize(self, _stop, proc, owner_pid)


_Key: TypeAlias = "str | None"  # a sandbox's context key: which waiting workers it may take (its limits, it sends them)
_IDLE: dict[_Key, list[_Idle]] = {}
_KEPT: dict[_Key, int] = {}  # more than IDLE_WORKERS waiting with this context key: keep_warm()
_IDLE_LOCK = threading.Lock()


def keep_warm(
    count: int,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    context: str | None = None,
) -> int:
    """From now on, keep up to ``count`` worker processes of this context key waiting for
    sandboxes (not just :data:`IDLE_WORKERS`), and start now, side by side, as many as are missing: for a host
    that opens many sandboxes in turn, such as a daemon serving many stores (:mod:`jsproj.follow.fleet`: an
    engine per store it attaches, never a process per store). Returns how many it started."""
    key = context
    with _IDLE_LOCK:
        _KEPT[key] = max(_KEPT.get(key, 0), count)
        missing = count - len(_IDLE.get(key, []))
    if missing <= 0:
        return 0
    sandboxes = [Sandbox(timeout=timeout, memory_limit=memory_limit, context=context) for _ in range(missing)]
    starts = [threading.Thread(target=_start_new, args=(each,), name="jsproj warm worker") for each in sandboxes]
    for thread in starts:
        thread.start()
    for thread in starts:
        thread.join()
    for each in sandboxes:
        each.close()  # its worker waits for the next sandbox (a new engine, or a new isolate, ready)
    return missing


def _key_of(sandbox: Sandbox) -> _Key:
    """Which waiting workers ``sandbox`` may take, and which it leaves its own to."""
    return sandbox.context


def _start_new(sandbox: Sandbox) -> None:
    """Start a new worker process for ``sandbox`` now, never one that waits (:func:`keep_warm` adds to those)."""
    with sandbox._lock:
        sandbox._discard()
        sandbox._spawn()


def _take_idle(key: _Key) -> _Idle | None:
    """A waiting worker process of this host process with this context key, if there is one."""
    with _IDLE_LOCK:
        waiting = _IDLE.get(key, [])
        while waiting:
            idle = waiting.pop(0)  # the one waiting longest: the likeliest to have its new isolate ready
            if idle.owner_pid == os.getpid() and idle.proc.poll() is None:
                idle.finalizer.detach()
                return idle
            idle.finalizer()
    return None


def _limited(sandbox: Sandbox, idle: _Idle) -> bool:
    """Give a worker ``sandbox`` took its limits, if it has others; False if it does not say it took them."""
    if idle.limits == (sandbox.timeout, sandbox.memory_limit):
        return True
    try:
        answer = sandbox._request(LIMITS.decode(), f"{sandbox.timeout!r} {sandbox.memory_limit}")
    except errors.JsprojError:
        return False
    return answer.get("ok") == "limits"


def _stop(proc: subprocess.Popen[bytes], owner_pid: int) -> None:
    if os.getpid() != owner_pid or proc.poll() is not None:
        return
    proc.kill()
    proc.wait()


class Sandbox:
    """A V8 isolate in a worker process, with the jsproj engine loaded; ``timeout`` (seconds) and ``memory_limit``
    (bytes) apply to every call; projection ``console.log`` output is kept in :attr:`logs`. ``context``: sandboxes
    of one key may take, one after another, the same V8 context, each with an engine of its own evaluated apart --
    the in-database hosts' model, one context for every store of a role (docs/sandbox.md); a daemon serving many
    stores of its role keys them by database (:mod:`jsproj.follow.fleet`). None (the default): an isolate each."""

    def __init__(
        self, *, timeout: float = DEFAULT_TIMEOUT, memory_limit: int = DEFAULT_MEMORY_LIMIT, context: str | None = None
    ) -> None:
        if not math.isfinite(timeout) or not 0 < timeout <= MAX_TIMEOUT:
            raise ValueError(f"timeout must be a number of seconds > 0 and at most {MAX_TIMEOUT:g}, not {timeout!r}")
        if memory_limit < 16 * 1024 * 1024:
            raise ValueError("memory_limit must be at least 16 MB")
        self.timeout = float(timeout)
        self.memory_limit = int(memory_limit)
        self.context = context
        self.logs: list[dict[str, Any]] = []
        self._sources: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self._stderr: Any = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._lock = threading.Lock()
        self._baseline_rss = 0
        self._fresh_rss = 0  # the worker's memory when its process started
        self._in_flight = False  # a request written whose answer was not read (the host was interrupted)
        self.restarts = 0
        self.memory_retries = 0  # calls run again in a fresh V8 after a memory limit
        self.engines = 1  # the engines its worker's context served, this sandbox's included (a shared context)

    # -- public API ---------------------------------------------------------

    def load(self, sources: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Load projection sources (``[{"file", "source"}]``); returns their descriptions."""
        payload = json.dumps(sources)
        described: list[dict[str, Any]] = self.call("load", payload)
        self._sources = payload
        return described

    def call(self, op: str, payload: str) -> Any:
        """Run one engine operation (``route``, ``apply``, ``normalize``, ``load``) on JSON text."""
        if op.encode() in CONTROL:
            raise errors.EngineError(f"{op!r} is not an engine operation")
        envelope = self._call_once(op, payload)
        if op in RETRIED and self._sources is not None and envelope.get("error", {}).get("kind") == MEMORY:
            # The heap this call ran out of may have been filled by earlier calls (a projection that keeps
            # growing a file-level variable): once more in a fresh V8 with the projections reloaded, before
            # the error is this call's own (and Projections names the projection at fault by running each alone).
            self.memory_retries += 1
            envelope = self._call_once(op, payload)
        self._keep_logs(envelope.get("logs"))
        if "error" in envelope:
            raise errors.from_info(envelope["error"])
        return envelope["ok"]

    def _call_once(self, op: str, payload: str) -> dict[str, Any]:
        with self._lock:
            self._ensure_worker()
            try:
                return self._request(op, payload)
            except errors.SandboxMemoryError as exc:  # the worker died: V8 ended it
                return {"error": {"kind": MEMORY, "message": exc.message, **exc.info}}

    def close(self) -> None:
        """Destroy the isolate (a later call starts a new one); the worker process waits for another sandbox."""
        with self._lock:
            if not self._recycle():
                self._discard()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def worker_pid(self) -> int | None:
        """The process id of the running worker, if any."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None and self._pid == os.getpid() else None

    # -- the worker ---------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._proc is not None and self._pid != os.getpid():
            self._proc = None  # inherited across fork(): the parent's worker, not ours
            self._finalizer = None
        if self._in_flight:  # an interrupted call's answer is still in the pipe: never read it as another's
            self._discard()
        if self._proc is not None and self._proc.poll() is None:
            return
        self._discard()
        self._start()
        if self._sources is not None:
            self.restarts += 1
            envelope = self._request("load", self._sources)
            if "error" in envelope:
                raise errors.from_info(envelope["error"])

    def _recycle(self) -> bool:
        """Ask the worker for a new isolate and leave the process to the next sandbox; False if it cannot."""
        proc, key = self._proc, _key_of(self)
        if proc is None or proc.stdin is None or proc.poll() is not None or self._pid != os.getpid():
            return False
        if self._in_flight or (self._worker_rss() or 0) > self._fresh_rss + RECYCLE_RSS_SLACK:
            return False  # an answer is still coming (the pipe is out of step), or its memory stayed high
        nonce = os.urandom(16).hex().encode()
        with _IDLE_LOCK:
            if len(_IDLE.get(key, [])) >= max(IDLE_WORKERS, _KEPT.get(key, 0)):
                return False
            request = RECYCLE if self.context is None else RENEW
            try:  # the answer (ready, with the nonce) is read by the sandbox that takes the process
                proc.stdin.write(HEADER.pack(len(request) + 1 + len(nonce)) + request + b"\n" + nonce)
                proc.stdin.flush()
            except OSError:
                return False
            limits = (self.timeout, self.memory_limit)
            _IDLE.setdefault(key, []).append(_Idle(proc, self._stderr, self._pid, nonce, self._fresh_rss, limits))
        if self._finalizer is not None:
            self._finalizer.detach()
        self._proc, self._stderr, self._finalizer = None, None, None
        return True

    def _start(self) -> None:
        idle = _take_idle(_key_of(self))
        if idle is not None:
            self._adopt(idle)
            try:
                ready = self._read_answer(time.monotonic() + STARTUP_TIMEOUT, starting=True)
            except errors.JsprojError:
                ready = {"error": "the waiting worker died"}
            if ready.get("ok") == "ready" and ready.get("nonce") == idle.nonce.decode() and _limited(self, idle):
                self._baseline_rss, self._fresh_rss = self._worker_rss() or 0, idle.fresh_rss
                self.engines = int(ready.get("engines", 1))
                return
            self._discard()
        self._spawn()

    def _adopt(self, idle: _Idle) -> None:
        """Take a waiting worker process; what it wrote on stderr before is not this sandbox's."""
        self._proc, self._stderr, self._pid = idle.proc, idle.stderr, os.getpid()
        if self._stderr is not None:
            self._stderr.seek(0)
            self._stderr.truncate()
        self._finalizer = weakref.finalize(self, _stop, idle.proc, self._pid)
        self._baseline_rss = 0

    def _spawn(self) -> None:
        self.engines = 1
        self._stderr = tempfile.TemporaryFile()
        self._proc = _popen(self.timeout, self.memory_limit, self._stderr)
        self._pid = os.getpid()
        self._finalizer = weakref.finalize(self, _stop, self._proc, self._pid)
        self._baseline_rss = 0
        ready = self._read_answer(time.monotonic() + STARTUP_TIMEOUT, starting=True)
        if "error" in ready:
            self._discard()
            raise errors.from_info(ready["error"])
        self._baseline_rss = self._fresh_rss = self._worker_rss() or 0

    def _discard(self) -> None:
        self._in_flight = False
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _request(self, op: str, payload: str) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        body = op.encode() + b"\n" + payload.encode("utf-8", "surrogatepass")
        self._in_flight = True  # until the answer is read whole: an exception in between leaves it set
        try:
            self._proc.stdin.write(HEADER.pack(len(body)) + body)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._in_flight = False
            raise self._died() from None
        # The worker enforces the time limit itself; this deadline only catches a hung worker.
        deadline = time.monotonic() + self.timeout + max(5.0, self.timeout)
        answer = self._read_answer(deadline)
        self._in_flight = False
        if "error" in answer and answer["error"].get("kind") in ("SandboxTimeoutError", "SandboxMemoryError"):
            self._reap()
        return answer

    def _read_answer(self, deadline: float, *, starting: bool = False) -> dict[str, Any]:
        header = self._read_exact(HEADER.size, deadline, starting)
        (size,) = HEADER.unpack(header)
        answer: dict[str, Any] = json.loads(self._read_exact(size, deadline, starting))
        return answer

    def _read_exact(self, size: int, deadline: float, starting: bool) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        chunks = _read(fd, size, lambda: self._wait_readable(fd, deadline, starting))
        if chunks is None:
            raise self._died()
        return chunks

    def _wait_readable(self, fd: int, deadline: float, starting: bool) -> None:
        """Wait for the worker's answer, killing it at the deadline or when it outgrows its memory."""
        while True:
            wait = deadline - time.monotonic()
            if wait > 0 and select.select([fd], [], [], min(wait, WATCH_INTERVAL))[0]:
                return
            rss = None if starting else self._worker_rss()
            over = rss is not None and rss > self._baseline_rss + self.memory_limit
            if wait > 0 and not (over and rss is not None and rss > self._baseline_rss + 2 * self.memory_limit):
                continue
            self._discard()
            raise _killed(starting, rss if over else None, self.timeout, self.memory_limit)

    def _worker_rss(self) -> int | None:
        return _rss(self._proc.pid) if self._proc is not None else None

    def _reap(self) -> None:
        """Wait for a worker that announced it is exiting, then forget it."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._discard()

    def _died(self) -> errors.JsprojError:
        """The error for a worker that vanished mid-call (V8 aborts on some out-of-memory cases)."""
        proc = self._proc
        code = proc.wait() if proc is not None else None
        output = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            output = self._stderr.read()[-20000:].decode("utf-8", "replace")
        self._discard()
        return _death(code, output, self.memory_limit)

    def _keep_logs(self, logs: list[dict[str, Any]] | None) -> None:
        if logs:
            room = MAX_LOGS - len(self.logs)
            self.logs.extend(logs[:room])

    def drain_logs(self) -> list[dict[str, Any]]:
        """Return and forget what projection code printed with ``console.*``."""
        logs, self.logs = self.logs, []
        return logs


def _rss(pid: int) -> int | None:
    """A process's resident memory in bytes (Linux), or None when unknown."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def _read(fd: int, size: int, wait: Callable[[], None]) -> bytes | None:
    """``size`` bytes from ``fd``, calling ``wait()`` before each read; None if it closes first."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        wait()
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _killed(starting: bool, rss: int | None, timeout: float, memory_limit: int) -> errors.JsprojError:
    """The error for a worker killed at its deadline (or, with ``rss``, for outgrowing its memory)."""
    if starting:
        return errors.SandboxError("the V8 sandbox did not start in time")
    if rss is not None:
        return errors.SandboxMemoryError(
            f"projection code went past the memory limit of {memory_limit // MB} MB "
            f"(the V8 worker had to be killed at {rss // MB} MB)"
        )
    return errors.SandboxTimeoutError(
        f"projection code ran past the time limit of {timeout:g} s (the V8 worker had to be killed)"
    )


def _death(code: int | None, output: str, memory_limit: int) -> errors.JsprojError:
    """The error for a worker that vanished mid-call, from its exit code and what it wrote on stderr."""
    if "out of memory" in output.lower() or "allocation failed" in output.lower():
        return errors.SandboxMemoryError(
            f"projection code exhausted V8's memory (limit {memory_limit // MB} MB; the V8 worker died)"
        )
    # V8 ends its process on what it cannot go on from (an invalid size, a fatal check): a limit of the
    # sandbox all the same, so that the projection at fault is named (Projections narrows it down).
    fatal = next((line for line in output.splitlines() if "Fatal" in line or "fatal" in line), None)
    last = fatal or next((line for line in reversed(output.strip().splitlines()) if line.strip()), "no output")
    return errors.SandboxMemoryError(f"projection code stopped the V8 worker (exit code {code}): {last.strip()}")


def _popen(timeout: float, memory_limit: int, stderr: Any) -> subprocess.Popen[bytes]:
    """A new worker process (``jsproj.engine.worker``) with these limits, its stderr into ``stderr``."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["TZ"] = "UTC"  # local-time Date methods give the same on every machine (docs/sandbox.md)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "jsproj.engine.worker", repr(timeout), str(memory_limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            close_fds=True,
        )
    except OSError as exc:
        raise errors.SandboxError(f"the V8 sandbox could not start: {exc}") from exc
