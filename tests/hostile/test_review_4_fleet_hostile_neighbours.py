"""Review 4: hostile stores next to honest ones in one fleet daemon that shares V8 contexts and connections between
stores (docs/daemon.md "Many stores, one daemon"; docs/sandbox.md "One context, store after store"). Every hostile
store's projection has the same name, and its events the same stream ids, as the honest stores': a page, a document,
a lock or a session setting kept from one store would show in the next one's view. One store attached at a time,
so every store takes the connections and the context the one before left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jsproj.projections.deploy import deploy
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore

pytestmark = pytest.mark.slow

JSPROJ = Path(sys.executable).parent / "jsproj"
HONEST = """
projections.aggregate('Count').by({
  $any: function (s, e) { s.n = (s.n || 0) + 1; s.sum = (s.sum || 0) + e.amount; s.tags = (s.tags || []).concat([e.tag]); }
});
"""
HOSTILE = {
    # fits the deploy's default memory limit, not the fleet's --memory-limit 64: fails while it loads there
    "a_loadhoard": """
var keep = []; for (var i = 0; i < 100; i++) keep.push(new Array(131072).fill(i));
projections.aggregate('Count').by({ $any: function (s) { s.n = keep.length; } });
""",
    "c_loop": "projections.aggregate('Count').by({ $any: function (s) { for (;;) {} } });",
    "e_hoard": """
var keep = [];
projections.aggregate('Count').by({ $any: function (s) { for (;;) keep.push(new Array(100000).fill(keep.length)); } });
""",
    "f_throw": """
projections.aggregate('Count').by({ $any: function (s, e) {
  throw new Proxy({}, { get: function () { for (;;) {} } });
} });
""",
    "g_bigdoc": "projections.aggregate('Count').by({ $any: function (s) { s.big = 'x'.repeat(17 * 1024 * 1024); } });",
    "h_deep": "projections.aggregate('Count').by({ $any: function (s) { var o = s; for (var i = 0; i < 600; i++) o = o.d = {}; } });",
}
HONEST_STORES = ["b_honest", "d_honest", "i_honest"]


def make(dsn: str, schema: str, source: str, events: int) -> None:
    with EventStore(dsn, schema=schema, max_size=1) as store:
        store.migrate()
        deploy(store, [{"file": "Count.js", "source": source}], lifecycles={"Count": "async"})
        store.append_all([{"id": f"s-{n % 3}", "type": "S", "data": {"$type": "Added", "amount": n, "tag": schema}}
                          for n in range(events)])  # fmt: skip


def test_hostile_stores_change_nothing_honest_stores_of_the_same_fleet_compute(dsn: str) -> None:
    for schema, source in HOSTILE.items():
        make(dsn, schema, source, 5)
    sizes = {schema: 40 + 7 * n for n, schema in enumerate(HONEST_STORES)}
    for schema, events in sizes.items():
        make(dsn, schema, HONEST, events)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSPROJ_")}
    done = subprocess.run(
        [str(JSPROJ), "daemon", "--dsn", dsn, "--all-stores", "--until-caught-up", "--max-attached", "1",
         "--workers", "1", "--timeout", "0.5", "--memory-limit", "64", "--poll-interval", "0.05", "--page-size", "2"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode != 0  # stores with a stopped projection are named
    for schema, events in sizes.items():
        with EventStore(dsn, schema=schema, max_size=1) as store:
            view = fetch_view(store, "Count")
        want = {"Count": {"n": events, "sum": sum(range(events)), "tags": [schema] * events}}
        assert view == want, (schema, done.stderr[-3000:])
    for schema in set(HOSTILE) - {"a_loadhoard"}:  # (its load fitted the limit the store runs with)
        assert f".{schema} (cannot catch up" in done.stderr, (schema, done.stderr[-3000:])
