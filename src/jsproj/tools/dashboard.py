"""``jsproj dashboard``: a read-only status page over HTTP (the standard library's http.server, in a thread).

``/`` is one static page (``dashboard.html``: inline CSS and script, no data in it) that polls
``/api/status`` (projections and subscriptions as ``jsproj status --json`` gives them, the daemons, the dead
letters) and ``/api/lag`` (the lag of each projection, sampled every ``interval`` seconds and kept in memory
for ``window`` seconds). ``/healthz`` answers ``ok`` while the store answers. The page builds its DOM with
``textContent`` only, under a Content-Security-Policy that allows its own script alone: projection names and
error messages are untrusted text. The store is opened with ``default_transaction_read_only``: the dashboard
only ever reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from jsproj import errors
from jsproj.follow.daemon.leases import STALE_SECONDS
from jsproj.follow.daemon.progress import LOCK_CLASS
from jsproj.loopback import MISDIRECTED, allowed_hosts, host_allowed
from jsproj.projections.operations import list_dead_letters
from jsproj.projections.status import ProjectionStatus, projection_status, subscription_status
from jsproj.redact import redact
from jsproj.store.sync import EventStore

DEFAULT_PORT = 8113
DEFAULT_INTERVAL = 5.0  # seconds between lag samples
DEFAULT_WINDOW = 600.0  # seconds of lag samples kept
DEAD_LETTERS_SHOWN = 200  # the page lists the first ones; the total is given

PAGE = resources.files("jsproj.tools").joinpath("dashboard.html").read_text("utf-8")
_SCRIPT = re.search(r"<script>(.*?)</script>", PAGE, re.S)
assert _SCRIPT is not None, "dashboard.html has its script inline"
# Only the page's own script runs (by its hash): markup that ever slipped into the DOM could not run any.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; script-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_SCRIPT.group(1).encode()).digest()).decode()
    + "'"
)

# The daemons, alive as the daemons count each other (a recent heartbeat and their connection still there),
# and how many units (projections or partitions) each holds the advisory lock of.
DAEMONS_QUERY = """
select d.id, d.host, d.pid, d.started_at, d.heartbeat_at,
       d.heartbeat_at > now() - make_interval(secs => %s)
         and (d.backend_pid is null or exists (select from pg_stat_activity a where a.pid = d.backend_pid)),
       (select count(*) from pg_locks k where k.pid = d.backend_pid and k.locktype = 'advisory' and k.granted
          and k.classid = %s::bigint::oid and k.objsubid = 2)
from pge_daemons d
order by d.id
"""


def read_only(dsn: str) -> str:
    """``dsn`` with ``default_transaction_read_only`` on: every statement on its connections only reads."""
    options = conninfo_to_dict(dsn).get("options") or ""
    return make_conninfo(dsn, options=f"{options} -c default_transaction_read_only=on".strip())


def daemons(store: EventStore) -> list[dict[str, Any]]:
    """The daemons of ``pge_daemons``: id, host, pid, started, heartbeat, alive, units held."""
    with store.connection() as conn:
        rows = conn.execute(DAEMONS_QUERY, (STALE_SECONDS, LOCK_CLASS)).fetchall()
    keys = ("id", "host", "pid", "startedAt", "heartbeatAt", "alive", "units")  # camelCase, as all JSON
    return [dict(zip(keys, row, strict=True)) for row in rows]


def everything(store: EventStore) -> list[ProjectionStatus]:
    """Projections, then Python subscriptions, as ``jsproj status`` lists them."""
    return projection_status(store) + subscription_status(store)


def snapshot(store: EventStore) -> dict[str, Any]:
    """What ``/api/status`` answers: projections and subscriptions, daemons, the first dead letters."""
    letters = list_dead_letters(store)
    return {
        "schema": store.schema,
        "time": datetime.now(UTC).isoformat(),
        "projections": [s.to_dict() for s in everything(store)],
        "daemons": daemons(store),
        "deadLetters": [d.to_dict() for d in letters[:DEAD_LETTERS_SHOWN]],
        "deadLettersTotal": len(letters),
    }


class LagSeries:
    """The lag (events behind) of each async projection and subscription at each sample; the last ``size``."""

    def __init__(self, size: int) -> None:
        self._samples: deque[tuple[float, dict[str, int]]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, at: float, found: list[ProjectionStatus]) -> None:
        lags = {s.name: s.lag_events for s in found if s.lag_events is not None}
        with self._lock:
            self._samples.append((at, lags))

    def __len__(self) -> int:
        return len(self._samples)

    def to_dict(self) -> dict[str, Any]:
        """``{"times": [epoch seconds], "series": {name: [lag or None per time]}}``."""
        with self._lock:
            samples = list(self._samples)
        names = sorted({name for _, lags in samples for name in lags})
        return {
            "times": [at for at, _ in samples],
            "series": {name: [lags.get(name) for _, lags in samples] for name in names},
        }


class Dashboard:
    """The HTTP server and the lag sampler, each in a thread; ``start`` them, ``stop`` them (or use ``with``).

    ``port`` 0 takes any free port (``url`` says which). Bound to a loopback address, requests must name it
    (or ``localhost``) as their Host: a web page elsewhere cannot read the dashboard through DNS rebinding.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        interval: float = DEFAULT_INTERVAL,
        window: float = DEFAULT_WINDOW,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if interval <= 0 or window < interval:
            raise errors.InputError(f"the sample interval ({interval:g} s) must be > 0 and at most the window")
        self.store = EventStore(read_only(dsn), schema=schema, max_size=4)
        self.interval = interval
        self.lag = LagSeries(max(2, int(window / interval)))
        self.log = log
        self.last_error: str | None = None
        self._stop = threading.Event()
        try:
            self._http = _Server((host, port), self)
        except OSError as exc:
            self.store.close()
            raise errors.InputError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from exc
        self._threads = [
            threading.Thread(target=self._http.serve_forever, name="jsproj dashboard http", daemon=True),
            threading.Thread(target=self._sample_until_stopped, name="jsproj dashboard sampler", daemon=True),
        ]

    @property
    def url(self) -> str:
        host, port = self._http.bound()
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def start(self) -> Dashboard:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._threads[0].is_alive():
            self._http.shutdown()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)
        self._http.server_close()
        self.store.close()

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sample(self) -> None:
        """One lag sample; a store that does not answer is noted (``last_error``), not fatal."""
        try:
            self.lag.add(time.time(), everything(self.store))
            self.last_error = None
        except (errors.JsprojError, psycopg.Error) as exc:
            self.last_error = redact(str(exc))

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` answers once the store answers a query."""
        with self.store.connection() as conn:
            conn.execute("select 1")
        return {"ok": True, "samples": len(self.lag), "sampleError": self.last_error}

    def _sample_until_stopped(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.hosts = allowed_hosts(*self.bound())  # any Host, unless bound to a loopback address

    def bound(self) -> tuple[str, int]:
        """The address and port listened on."""
        host, port = self.server_address[:2]
        return (host if isinstance(host, str) else bytes(host).decode()), int(port)


class _Handler(BaseHTTPRequestHandler):
    """GET only: the page, the two JSON documents, the health check."""

    server: _Server
    server_version = "jsproj-dashboard"

    def do_GET(self) -> None:
        if not host_allowed(self.server.hosts, self.headers.get("Host")):
            self._send(MISDIRECTED, "text/plain; charset=utf-8", b"unknown Host\n")
            return
        board, path = self.server.dashboard, urlsplit(self.path).path
        if path == "/":
            self._send(200, "text/html; charset=utf-8", PAGE.encode())
        elif path == "/api/lag":
            self._json(200, board.lag.to_dict())
        elif path == "/api/status":
            self._answer(lambda: snapshot(board.store))
        elif path == "/healthz":
            self._answer(board.health)
        else:
            self._json(404, {"error": f"no such page: {path}"})

    def _answer(self, make: Callable[[], dict[str, Any]]) -> None:
        try:
            self._json(200, make())
        except (errors.JsprojError, psycopg.Error) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._json(503, {"error": redact(first)})

    def _json(self, code: int, body: dict[str, Any]) -> None:
        self._send(code, "application/json", json.dumps(body, default=_jsonable, ensure_ascii=False).encode())

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log = self.server.dashboard.log
        if log is not None:
            log(f"{self.address_string()} {format % args}")


def _jsonable(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")
