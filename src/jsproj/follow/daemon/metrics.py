"""A daemon's Prometheus metrics and health, served over HTTP (``jsproj daemon --metrics-port``).

:class:`DaemonMetrics` is the daemon's hooks (:mod:`jsproj.follow.daemon.hooks`):
the loop tells it of each round, committed page, build progress and lost
connection, and it counts them. A scrape of ``/metrics`` answers from those
counts and reads the held units' lag from the progress table on a
connection of its own (one indexed probe per unit: the first event not
applied, and a capped count); ``/healthz`` answers from the last round.
Each daemon has its own :class:`~prometheus_client.CollectorRegistry`, so
several may run in one process. docs/daemon.md lists the metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from jsproj.follow.daemon.hooks import DaemonHooks
from jsproj.follow.daemon.pages import Applied
from jsproj.follow.daemon.progress import Unit
from jsproj.loopback import MISDIRECTED, allowed_hosts, host_allowed
from jsproj.store.identifiers import search_path
from jsproj.store.recorded import NOT_ARCHIVED

if TYPE_CHECKING:
    from jsproj.follow.daemon.loop import Daemon

LAG_COUNT_CAP = 1_000_000  # lag_events counts at most this many events per scrape (the count walks an index)
DEFAULT_STALL_SECONDS = 30.0  # no sign of life for this long: unhealthy (as long as other daemons wait to take over)

# The held units' lag, dead letters and status: an indexed probe for the first event not applied, a capped count
# (events of archived streams are not lag: no page reads them, docs/lifecycle.md).
LAG_QUERY = f"""
select p.name, p.status,
       (select count(*) from (select from pge_events e
                              where (e.tx_id, e.position) > (p.last_tx, p.last_position) and {NOT_ARCHIVED}
                              limit %s) as ahead),
       (select extract(epoch from now() - e.appended_at)::float8 from pge_events e
        where (e.tx_id, e.position) > (p.last_tx, p.last_position) and {NOT_ARCHIVED}
        order by e.tx_id, e.position limit 1),
       (select count(*) from pge_dead_letters l where l.projection = p.name)
from pge_projection_progress p
where (p.name, p.partition) in (select * from unnest(%s::text[], %s::int[]))
"""


@dataclass
class _State:
    """What the loop told, as of the last hook (read by scrapes under the lock)."""

    connected: bool = False
    reason: str = "not connected to the database yet"
    finished: bool = False
    alive_at: float = field(default_factory=time.monotonic)
    held: frozenset[Unit] = frozenset()
    lost: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # counter -> projection -> value

    def add(self, counter: str, name: str, amount: int) -> None:
        by_name = self.counts.setdefault(counter, {})
        by_name[name] = by_name.get(name, 0) + amount


COUNTERS = {  # the per-projection counters: name (without _total) -> help
    "events_applied": "Events applied (or skipped as dead letters) by this daemon, by following and building.",
    "pages_applied": "Pages committed by this daemon (one transaction each).",
    "errors": "Events the projection's code failed on in this daemon's pages (dead-lettered, or stopping it).",
    "dead_letters_written": "Dead letters this daemon's pages wrote.",
}


GAUGES = {  # the per-projection gauges read at each scrape, for the units this daemon holds
    "lag_events": f"Events appended that the projection has not applied yet (counted up to {LAG_COUNT_CAP}).",
    "lag_seconds": "Age of the oldest event the projection has not applied yet (0 when caught up).",
    "dead_letters": "Dead letters of the projection stored now.",
    "stopped": "1 when the projection (a partition of it) stopped on an event.",
}


class DaemonMetrics(DaemonHooks):
    """The counts one daemon's loop feeds, its health, and (:meth:`serve`) the HTTP server answering scrapes."""

    def __init__(self, *, stall_seconds: float = DEFAULT_STALL_SECONDS) -> None:
        self.stall_seconds = stall_seconds
        self._lock = threading.Lock()
        self._state = _State()

    # -- hooks (the loop's thread) --------------------------------------------

    def holding(self, held: Set[Unit]) -> None:
        self.round_done(held)

    def round_done(self, held: Set[Unit]) -> None:
        with self._lock:
            self._state.connected, self._state.reason = True, ""
            self._state.held, self._state.alive_at = frozenset(held), time.monotonic()

    def lost(self, reason: str) -> None:
        with self._lock:
            self._state.connected, self._state.reason, self._state.held = False, reason, frozenset()
            self._state.lost += 1

    def page_committed(self, applied: Applied) -> None:
        with self._lock:
            state = self._state
            state.alive_at = time.monotonic()
            for name in sorted({unit.name for unit in applied.reached}):
                state.add("pages_applied", name, 1)
                state.add("events_applied", name, max((n for u, n in applied.events.items() if u.name == name)))
                letters = applied.letters.get(name, 0)
                state.add("dead_letters_written", name, letters)
                state.add("errors", name, letters + (name in applied.stopped))

    def built(self, name: str, events: int) -> None:
        with self._lock:
            self._state.alive_at = time.monotonic()
            self._state.add("events_applied", name, events)

    def working(self) -> None:
        with self._lock:
            self._state.alive_at = time.monotonic()

    def finished(self) -> None:
        with self._lock:
            self._state.connected, self._state.finished, self._state.reason = False, True, "the daemon stopped"

    # -- answers (any thread) ---------------------------------------------------

    def snapshot(self) -> _State:
        with self._lock:
            state = self._state
            return _State(state.connected, state.reason, state.finished, state.alive_at, state.held, state.lost,
                          {k: dict(v) for k, v in state.counts.items()})  # fmt: skip

    def health(self) -> tuple[bool, str]:
        """Healthy when connected and its rounds go on, holding its share of the units (perhaps none)."""
        state = self.snapshot()
        if not state.connected:
            return False, state.reason
        quiet = time.monotonic() - state.alive_at
        if quiet > self.stall_seconds:
            return False, f"no round or page for {quiet:.0f} s (the loop is stuck)"
        if not state.held:
            return True, "ok: connected; nothing to hold (idle)"
        units = f"{len(state.held)} unit{'s' if len(state.held) != 1 else ''}"
        return True, f"ok: connected; holding {units}: {', '.join(sorted(map(str, state.held)))}"

    def serve(self, daemon: Daemon, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
        """Serve ``/metrics`` and ``/healthz`` for ``daemon`` (whose hooks this is) on a thread of its own."""
        registry = CollectorRegistry(auto_describe=False)
        collector = _Collector(self, daemon)
        registry.register(collector)
        return MetricsServer(self.health, registry, collector.close, host, port)


class _Collector(Collector):
    """Builds the metric families at each scrape: the hooks' counts, and the held units' lag read now."""

    def __init__(self, metrics: DaemonMetrics, daemon: Daemon) -> None:
        self.metrics, self.daemon = metrics, daemon
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        state = self.metrics.snapshot()
        info = InfoMetricFamily("jsproj_daemon", "The daemon's id and schema.")
        info.add_metric([], {"id": self.daemon.id, "schema": self.daemon.schema})
        yield info
        yield GaugeMetricFamily("jsproj_daemon_up", "1 while connected and working.", value=int(state.connected))
        yield GaugeMetricFamily("jsproj_daemon_held_units", "Units this daemon holds.", value=len(state.held))
        lost = "Times the daemon lost the database (or hit an error) and connected again."
        yield CounterMetricFamily("jsproj_daemon_disconnects", lost, value=state.lost)
        restarts = "Restarts of the daemon's V8 worker (a limit hit, a crash); its projections share it."
        yield CounterMetricFamily("jsproj_daemon_sandbox_restarts", restarts, value=self.daemon.sandbox_restarts)
        for counter, help_text in COUNTERS.items():
            family = CounterMetricFamily(f"jsproj_projection_{counter}", help_text, labels=["projection"])
            for name, value in sorted(state.counts.get(counter, {}).items()):
                family.add_metric([name], value)
            yield family
        yield from self._lag(state.held)

    def _lag(self, held: frozenset[Unit]) -> Iterator[Metric]:
        """The held projections' lag (their partition furthest behind), stored dead letters and stops."""
        families = {
            key: GaugeMetricFamily(f"jsproj_projection_{key}", help_text, labels=["projection"])
            for key, help_text in GAUGES.items()
        }
        for name, values in sorted(self._read(held).items()):
            for key, value in values.items():
                families[key].add_metric([name], value)
        yield from families.values()

    def _read(self, held: frozenset[Unit]) -> dict[str, dict[str, float]]:
        """By projection: lag_events, lag_seconds, dead_letters, stopped; empty if the database does not answer."""
        if not held:
            return {}
        with self._lock:
            try:
                return read_lag(self._connection(), held)
            except psycopg.Error:
                self._close()
                return {}

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            name = f"jsproj daemon {self.daemon.id} metrics"[:63]
            self._conn = psycopg.connect(self.daemon.dsn, autocommit=True, connect_timeout=2, application_name=name)
            self._conn.execute(search_path(self.daemon.schema))
        return self._conn

    def close(self) -> None:
        """Close its connection (the server stopped answering scrapes)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


def read_lag(conn: psycopg.Connection[Any], held: Set[Unit]) -> dict[str, dict[str, float]]:
    """The ``held`` units' projections (of the store of ``conn``'s search path), by name: lag_events,
    lag_seconds, dead_letters, stopped -- the partition furthest behind's."""
    units = sorted(held)
    params = (LAG_COUNT_CAP, [u.name for u in units], [u.partition for u in units])
    out: dict[str, dict[str, float]] = {}
    for name, status, lag, seconds, letters in conn.execute(LAG_QUERY, params).fetchall():
        mine = out.setdefault(name, {"lag_events": 0, "lag_seconds": 0.0, "dead_letters": letters, "stopped": 0})
        mine["lag_events"] = max(mine["lag_events"], lag)
        mine["lag_seconds"] = max(mine["lag_seconds"], seconds or 0.0)
        mine["stopped"] = max(mine["stopped"], int(status == "stopped"))
    return out


class MetricsServer:
    """``/metrics`` (Prometheus text) and ``/healthz`` (200 or 503, with the reason) on ``host:port``."""

    def __init__(
        self,
        health: Callable[[], tuple[bool, str]],
        registry: CollectorRegistry,
        closing: Callable[[], None],
        host: str,
        port: int,
    ) -> None:
        self.registry, self._closing = registry, closing
        self._server = _Server((host, port), health, registry)
        self.host, self.port = host, int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="jsproj-metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._closing()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], health: Callable[[], tuple[bool, str]], registry: CollectorRegistry
    ) -> None:
        super().__init__(address, _Handler)
        self.health, self.registry = health, registry
        # The same Host rule as the dashboard's (jsproj.loopback)
        self.hosts = allowed_hosts(address[0], int(self.server_address[1]))


class _Handler(BaseHTTPRequestHandler):
    """GET /metrics and /healthz; a loopback server answers only requests that name it (jsproj.loopback)."""

    server: _Server

    def do_GET(self) -> None:  # http.server's name
        registry = self.server.registry
        path = self.path.split("?", 1)[0]
        if not host_allowed(self.server.hosts, self.headers.get("Host")):
            self._answer(MISDIRECTED, b"unknown Host\n", "text/plain; charset=utf-8")
        elif path == "/metrics":
            self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/health"):
            healthy, why = self.server.health()
            self._answer(200 if healthy else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
        else:
            self._answer(404, b"not found: /metrics or /healthz\n", "text/plain; charset=utf-8")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        pass  # a scrape every few seconds is not worth a log line


__all__ = ["COUNTERS", "GAUGES", "DaemonMetrics", "MetricsServer", "read_lag"]
