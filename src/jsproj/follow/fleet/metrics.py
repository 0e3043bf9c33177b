"""A fleet's Prometheus metrics, every store's labelled ``store="database.schema"``, and the fleet's health.

Each store's daemon has its own :class:`~jsproj.follow.daemon.metrics.DaemonMetrics`
(its hooks), made by :meth:`FleetMetrics.hooks_for`. A scrape gives the
same families a lone daemon's does (docs/daemon.md#metrics) with a ``store``
label, and the held projections' lag read on one connection per database
(not per store), plus how many stores are attached and parked.
``/healthz`` is healthy while the fleet's workers go round: no attached
store's daemon is stuck (each as a lone daemon's health says), and a store
whose database is lost is named.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jsproj.follow.daemon.metrics import COUNTERS, DEFAULT_STALL_SECONDS, GAUGES, DaemonMetrics, MetricsServer, read_lag
from jsproj.follow.fleet.catalog import StoreKey
from jsproj.store.identifiers import search_path

if TYPE_CHECKING:
    from jsproj.follow.fleet.loop import Fleet


class FleetMetrics:
    """The hooks of every store's daemon, and the fleet's health from them."""

    def __init__(self, *, stall_seconds: float = DEFAULT_STALL_SECONDS) -> None:
        self.stall_seconds = stall_seconds
        self._lock = threading.Lock()
        self.stores: dict[StoreKey, DaemonMetrics] = {}

    def hooks_for(self, key: StoreKey) -> DaemonMetrics:
        """The hooks of ``key``'s daemon (the same ones again if it is served again)."""
        with self._lock:
            return self.stores.setdefault(key, DaemonMetrics(stall_seconds=self.stall_seconds))

    def every(self) -> dict[StoreKey, DaemonMetrics]:
        """Every store's hooks, as of now."""
        with self._lock:
            return dict(self.stores)

    def health(self, fleet: Fleet) -> tuple[bool, str]:
        """Unhealthy when an attached store's daemon is stuck or lost its database (naming them)."""
        hooks = self.every()
        attached = [key for key, slot in list(fleet.slots.items()) if slot.attached and key in hooks]
        sick = sorted(f"{key.label}: {why}" for key in attached for ok, why in [hooks[key].health()] if not ok)
        parked = len(fleet.slots) - len(attached)
        if sick:
            return False, "; ".join(sick)
        return True, f"ok: {len(attached)} stores attached, {parked} parked"

    def serve(self, fleet: Fleet, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
        """Serve ``/metrics`` and ``/healthz`` for ``fleet`` on a thread of its own."""
        registry = CollectorRegistry(auto_describe=False)
        collector = _FleetCollector(self, fleet)
        registry.register(collector)
        return MetricsServer(lambda: self.health(fleet), registry, collector.close, host, port)


class _FleetCollector(Collector):
    """Builds the families at each scrape: each store's counts, and its held projections' lag read now."""

    def __init__(self, metrics: FleetMetrics, fleet: Fleet) -> None:
        self.metrics, self.fleet = metrics, fleet
        self._lock = threading.Lock()
        self._conns: dict[str, psycopg.Connection[Any]] = {}  # a connection per database (by DSN)

    def collect(self) -> Iterator[Metric]:
        slots = dict(self.fleet.slots)
        attached = sum(1 for slot in slots.values() if slot.attached)
        stores = GaugeMetricFamily("jsproj_fleet_stores", "Stores the daemon serves, by state.", labels=["state"])
        stores.add_metric(["attached"], attached)
        stores.add_metric(["parked"], len(slots) - attached)
        yield stores
        up = GaugeMetricFamily("jsproj_daemon_up", "1 while the store's daemon is connected.", labels=["store"])
        held = GaugeMetricFamily("jsproj_daemon_held_units", "Units held in the store.", labels=["store"])
        lost = CounterMetricFamily("jsproj_daemon_disconnects", "Times the store's daemon lost the database.",
                                   labels=["store"])  # fmt: skip
        counters = {c: CounterMetricFamily(f"jsproj_projection_{c}", text, labels=["store", "projection"])
                    for c, text in COUNTERS.items()}  # fmt: skip
        gauges = {g: GaugeMetricFamily(f"jsproj_projection_{g}", text, labels=["store", "projection"])
                  for g, text in GAUGES.items()}  # fmt: skip
        for key, metrics in sorted(self.metrics.every().items()):
            state = metrics.snapshot()
            up.add_metric([key.label], int(state.connected and key in slots and slots[key].attached))
            held.add_metric([key.label], len(state.held))
            lost.add_metric([key.label], state.lost)
            for counter, family in counters.items():
                for name, value in sorted(state.counts.get(counter, {}).items()):
                    family.add_metric([key.label, name], value)
            for name, values in sorted(self._lag(key, state.held).items()):
                for gauge, measured in values.items():
                    gauges[gauge].add_metric([key.label, name], measured)
        yield from (up, held, lost, *counters.values(), *gauges.values())

    def _lag(self, key: StoreKey, held: frozenset[Any]) -> dict[str, dict[str, float]]:
        if not held:
            return {}
        with self._lock:
            try:
                conn = self._conns.get(key.dsn)
                if conn is None or conn.closed:
                    conn = self._conns[key.dsn] = psycopg.connect(
                        key.dsn, autocommit=True, connect_timeout=2, application_name="jsproj daemon fleet metrics"
                    )
                conn.execute(search_path(key.schema))
                return read_lag(conn, held)
            except psycopg.Error:
                self._close(key.dsn)
                return {}

    def _close(self, dsn: str) -> None:
        conn = self._conns.pop(dsn, None)
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def close(self) -> None:
        with self._lock:
            for dsn in list(self._conns):
                self._close(dsn)
