"""The V8 worker: a child process that runs projection code for a Sandbox.

Projection code is untrusted, and some JavaScript (a huge array, for one)
makes V8 abort the whole process; so V8 lives here, never in the host. The
worker reads framed requests on stdin and answers on stdout (see
:mod:`jsproj.engine.sandbox`). After a time or memory limit it answers, then exits:
the host starts a fresh worker, so nothing half-done survives.

Run as ``python -m jsproj.engine.worker TIMEOUT_SECONDS MEMORY_LIMIT_BYTES``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import traceback
from functools import cache
from typing import Any, cast

from jsproj.engine.wire import CONTROL, LIMITS, RENEW, read_frame, write_frame

OPERATIONS = frozenset(
    "load route apply normalize foldStart foldLines foldRows foldEnd cacheDrop evaluate upcasters upcast".split()
)
EVAL_OPERATIONS = frozenset({"route", "apply", "normalize"})
# Payloads up to this size go to V8 as a string literal in one eval (one task
# on mini-racer's V8 thread); larger ones as a function argument (three tasks,
# but no parsing of a huge literal).
SMALL = 65536
RECYCLE_SECONDS = 10.0  # the longest freeing an isolate may take
# V8's young generation grows to 16 MB semi-spaces by default; capped at 8 MB
# a long fold peaks ~50 MB lower at the same speed (bench/rebuild_bench.py).
# The regular-expression syntax only V8 14 has (modifiers, duplicate named
# groups) is off, as in every other host (docs/javascript.md).
V8_FLAGS = ("--single-threaded", "--max-semi-space-size=8", "--no-js-regexp-modifiers",
            "--no-js-regexp-duplicate-named-groups")  # fmt: skip


def error_answer(kind: str, message: str, **fields: object) -> str:
    return json.dumps({"error": {"kind": kind, "message": message, **fields}})


#: How many engines one context serves, one after another (RENEW), before the next sandbox gets a new isolate:
#: what the engines before left unreachable is garbage, but a heap is never quite as new.
ENGINES_PER_CONTEXT = 200


@cache
def bootstrap_script() -> str:
    """What a new isolate evaluates first: it yields a function (held by this host alone) that makes an engine
    and answers the dispatcher of its operations. Each engine file is evaluated by an indirect eval of its own,
    so that its stack frames name its file (js/lib/errors.js cuts user stacks at them); the first engine makes
    the context's realm, and the lockdown that follows refuses eval to everything but this function, which
    makes the next engines in the same context (:meth:`Worker.renew`: the in-database hosts' model, one engine
    per store in one context, docs/sandbox.md). It also defines the frozen global ``__jsprojCall`` (the eval
    path of :meth:`Worker.handle`), which runs the current engine's route, apply or normalize only."""
    from jsproj.engine.bundle import engine_files

    files = [f"(function (jsproj) {{{source}\n}})\n//# sourceURL=jsproj/lib/{name}" for name, source in engine_files()]
    return (
        "(function (realEval, files, allowed) {\n'use strict';\n"
        "var realm = null, current = null;\n"
        "var call = { __jsprojCall(op, text) {\n"
        "  if (allowed.indexOf(op) < 0) throw new Error('unknown operation');\n"
        "  return current[op](text);\n"
        "} }.__jsprojCall;\n"
        "Object.defineProperty(globalThis, '__jsprojCall', { value: call });\n"
        "return function () {\n"
        "  var jsproj = { realm: realm };\n"
        "  for (var i = 0; i < files.length; i++) realEval(files[i])(jsproj);\n"
        "  var host = current = jsproj.host;\n"
        "  realm = host.realm;\n"
        "  return function (op, text) { return host[op](text); };\n"
        "};\n"
        f"}})((0, eval), {json.dumps(files)}, {json.dumps(sorted(EVAL_OPERATIONS))})"
    )


class Worker:
    """One V8 isolate with the engine loaded, and the limits of every call."""

    def __init__(self, timeout: float, memory_limit: int) -> None:
        from py_mini_racer import MiniRacer, init_mini_racer

        self.timeout = timeout
        self.memory_limit = memory_limit
        init_mini_racer(flags=V8_FLAGS, ignore_duplicate_init=True)  # once per process; a recycled worker is past it
        self.racer = MiniRacer()
        self.racer.set_hard_memory_limit(memory_limit)
        self.make_engine = cast(Any, self.racer.eval(bootstrap_script()))  # a JSFunction: see bootstrap_script
        # A JSFunction: called with an operation's name and its payload text, it answers text. One function for
        # every operation: one hand-off to V8 where a function each cost 13 (3 ms of each new isolate's 17).
        self.dispatch: Any = self.make_engine()
        self.engines = 1
        # Lock the sandbox down before any projection file loads (js/lib/lockdown.js): the frozen global
        # __jsprojCall (made above) stays, and runs route/apply/normalize only (eval path): projection code
        # that finds it cannot replace the loaded projections.
        locked = str(self.dispatch("lockdown", json.dumps({"ops": [], "keep": ["__jsprojCall"]})))
        if "error" in json.loads(locked):
            raise RuntimeError(json.loads(locked)["error"]["message"])

    def renew(self) -> bool:
        """The next sandbox's engine, in this context (a sandbox sharing it: sandbox.py): the one before let go
        of what it held, a new one evaluated beside it. False when this context has served enough engines (the
        caller then makes a new isolate)."""
        if self.engines >= ENGINES_PER_CONTEXT:
            return False
        self.dispatch("dispose", "", timeout_sec=self.timeout)
        self.dispatch = self.make_engine(timeout_sec=self.timeout)
        self.engines += 1
        return True

    def set_limits(self, timeout: float, memory_limit: int) -> None:
        """The limits of the next sandbox's calls (it took this worker, made for other limits)."""
        self.timeout, self.memory_limit = timeout, memory_limit
        self.racer.set_hard_memory_limit(memory_limit)

    def close(self) -> None:
        """Destroy the isolate, and with it everything projection code made."""
        self.racer.close()

    def handle(self, op: str, payload: str) -> tuple[str, bool]:
        """The answer to one request, and whether the worker must exit after it."""
        from py_mini_racer import JSEvalException, JSOOMException, JSTimeoutException

        if op not in OPERATIONS:
            return error_answer("EngineError", f"unknown sandbox operation {op!r}"), False
        try:
            if len(payload) <= SMALL and op in EVAL_OPERATIONS:
                answer = self.racer.eval(
                    f"__jsprojCall({json.dumps(op)}, {json.dumps(payload)})", timeout_sec=self.timeout
                )
            else:
                answer = self.dispatch(op, payload, timeout_sec=self.timeout)
        except JSTimeoutException:
            where = self.running()
            return error_answer(
                "SandboxTimeoutError",
                f"{describe(where)} ran past the time limit of {self.timeout:g} s",
                **where,
            ), True
        except (JSOOMException, JSEvalException) as exc:
            if isinstance(exc, JSOOMException) or self.racer.was_hard_memory_limit_reached():
                where = self.running(after_oom=True)
                return error_answer(
                    "SandboxMemoryError",
                    f"{describe(where)} went past the memory limit of {self.memory_limit // (1024 * 1024)} MB",
                    **where,
                ), True
            return error_answer("InternalError", f"the sandbox failed: {exc}"), True
        except Exception as exc:  # noqa: BLE001 -- never die without answering
            return error_answer("InternalError", f"the sandbox failed: {type(exc).__name__}: {exc}"), True
        if not isinstance(answer, str):
            return error_answer("InternalError", f"the engine answered {type(answer).__name__}, not text"), True
        if op == "load" and '"ProjectionSyntaxError"' in answer:
            answer = self.locate_syntax_error(answer, payload)
        return answer, False

    def running(self, *, after_oom: bool = False) -> dict[str, object]:
        """What the engine was running when a call was stopped, if it can still say."""
        try:
            if after_oom:
                self.racer.low_memory_notification()
            answer = json.loads(self.dispatch("current", "", timeout_sec=1.0))
            return {k: v for k, v in answer.get("ok", {}).items() if v is not None}
        except Exception:  # noqa: BLE001 -- the isolate may be unusable; the host then narrows it down
            return {}

    def locate_syntax_error(self, answer: str, payload: str) -> str:
        """Add the line of a syntax error, which only V8's script compiler reports."""
        envelope = json.loads(answer)
        error = envelope.get("error", {})
        sources = {item["file"]: item["source"] for item in json.loads(payload)}
        source = sources.get(error.get("file"))
        if source is None:
            return answer
        try:
            self.racer.eval("(function () {" + source + "\n})", timeout_sec=self.timeout)
        except Exception as exc:  # noqa: BLE001 -- we only want the line number it reports
            match = re.match(r"<anonymous>:(\d+):", str(exc))
            if match:  # past the end of the source means "at its end" (the wrapper adds a line)
                line = min(int(match.group(1)), source.count("\n") + 1)
                error["line"] = line
                error["message"] = error["message"].replace(f"{error['file']}: ", f"{error['file']}:{line}: ", 1)
        return json.dumps(envelope)


def describe(where: dict[str, object]) -> str:
    if where.get("projection") or where.get("upcaster"):
        text = f"projection {where['projection']}" if where.get("projection") else f"upcaster {where['upcaster']}"
        if where.get("position") is not None:
            text += f" (on {where.get('eventType')} event at position {where['position']})"
        return text
    if where.get("file"):
        return f"projection file {where['file']}"
    return "projection code"


def next_worker(worker: Worker, *, renew: bool) -> Worker | None:
    """The worker for the next sandbox: ``renew``, a new engine in the same context if it still serves more;
    else a new isolate (None if it cannot start: the host then starts a new process)."""
    try:
        if renew and worker.renew():
            return worker
    except Exception:  # noqa: BLE001 -- the context is in doubt: a new isolate
        traceback.print_exc()
    # Freeing an isolate has been seen to hang for good: then the process ends itself (its host
    # may be gone and never kill it), and the sandbox that takes it starts another.
    watchdog = threading.Timer(RECYCLE_SECONDS, os._exit, (1,))
    watchdog.daemon = True
    watchdog.start()
    worker.close()
    watchdog.cancel()
    try:
        return Worker(worker.timeout, worker.memory_limit)
    except Exception:  # noqa: BLE001 -- said on stderr; the host then starts a new process
        traceback.print_exc()
        return None


def main() -> int:
    timeout, memory_limit = float(sys.argv[1]), int(sys.argv[2])
    requests = sys.stdin.buffer
    # Answers go to the original stdout; anything else printed goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        worker = Worker(timeout, memory_limit)
    except Exception as exc:  # noqa: BLE001 -- report any start-up failure to the host
        write_frame(answers, error_answer("SandboxError", f"the V8 sandbox could not start: {exc}").encode())
        return 1
    write_frame(answers, b'{"ok": "ready"}')
    while True:
        frame = read_frame(requests)
        if frame is None:  # the host went away: no interpreter teardown (freeing an isolate can hang there)
            os._exit(0)
        op, _, payload = frame.partition(b"\n")
        if op == LIMITS:
            timeout_text, _, memory_text = payload.decode().partition(" ")
            worker.set_limits(float(timeout_text), int(memory_text))
            write_frame(answers, b'{"ok": "limits"}')
            continue
        if op in CONTROL:  # the sandbox closed: a new engine or isolate for the next one (sandbox.py)
            following = next_worker(worker, renew=op == RENEW)
            if following is None:
                write_frame(answers, error_answer("SandboxError", "the V8 sandbox could not restart").encode())
                return 1
            worker = following
            ready = {"ok": "ready", "nonce": payload.decode(), "engines": worker.engines}
            write_frame(answers, json.dumps(ready).encode())
            continue
        answer, must_exit = worker.handle(op.decode(), payload.decode("utf-8", "surrogatepass"))
        write_frame(answers, answer.encode("utf-8"))
        if must_exit:
            # Skip interpreter teardown: freeing an isolate stopped mid-call can hang.
            os._exit(0)


def run() -> None:
    """:func:`main`, ended by ``os._exit`` whatever happens: never through the interpreter's teardown, whose
    freeing of the isolate has been seen to hang for good -- a worker whose host went away mid-answer
    (a BrokenPipeError) then lived on as an orphan."""
    try:
        code = main()
    except BaseException:  # noqa: BLE001 -- said on stderr, then the same exit as any other
        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
