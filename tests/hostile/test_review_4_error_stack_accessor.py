"""Review 4: V8's accessor of an error's ``stack`` is one getter/setter pair per V8 context, and the lockdown does
not freeze it (docs/sandbox.md: "every built-in object and prototype reachable from the global object ... is
frozen"; "Shared objects are frozen"). Any projection reaches it with
``Object.getOwnPropertyDescriptor(new Error(), 'stack').get`` and can write properties on it. Since a fleet's stores
now take one V8 context in turn (docs/sandbox.md, "One context, store after store"), a store's handler writes its
event's data there and the next store's file reads it, at load time or in a handler: another tenant's events.
(Inside one store it is also a channel from one projection to another: "no path from one projection to another".)
"""

from __future__ import annotations

import json
import uuid

import pytest

from jsproj.engine.projections import Projections
from jsproj.follow.daemon import Daemon, Shared
from jsproj.follow.fleet import Catalog, Fleet, StoreKey
from jsproj.projections.deploy import deploy
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore

from projections import record

pytestmark = pytest.mark.slow

WRITER = r"""
projections.aggregate('Writer').by({
  Secret: function (state, evt) {
    var d = Object.getOwnPropertyDescriptor(new Error('x'), 'stack');
    try { d.get.leak = evt.text; } catch (e) {}
    try { d.set.leak = evt.text; } catch (e) {}
    state.n = (state.n || 0) + 1;
  }
});
"""
READER = r"""
function peek() {
  var d = Object.getOwnPropertyDescriptor(new Error('x'), 'stack');
  return [d && d.get && d.get.leak, d && d.set && d.set.leak].filter(function (v) { return v !== undefined; });
}
var atLoad = peek();
projections.aggregate('Reader').by({
  $any: function (state) { state.atLoad = atLoad; state.inCall = peek(); }
});
"""


def test_a_store_cannot_leave_data_on_the_error_stack_accessor_for_the_next_store() -> None:
    key = f"review4 {uuid.uuid4().hex}"
    with Projections([{"file": "Writer.js", "source": WRITER}], context=key) as writer:
        writer.apply(record("Secret", {"text": "tenant-a-password"}), {"Writer": {"Writer": None}})
        pid = writer.sandbox.worker_pid
    with Projections([{"file": "Reader.js", "source": READER}], context=key) as reader:
        assert reader.sandbox.worker_pid == pid  # the same context, as the fleet does
        state = reader.apply(record("Other"), {"Reader": {"Reader": None}}).changes["Reader"].upserts["Reader"]
    assert state == {"atLoad": [], "inCall": []}


def test_one_projection_cannot_pass_events_to_another_through_the_error_stack_accessor() -> None:
    with Projections([{"file": "A_Writer.js", "source": WRITER}, {"file": "B_Reader.js", "source": READER}]) as both:
        both.apply(
            record("Secret", {"text": "only-for-writer"}), {"Writer": {"Writer": None}, "Reader": {"Reader": None}}
        )
        state = both.apply(record("Other"), {"Reader": {"Reader": None}}).changes["Reader"].upserts["Reader"]
    assert state["inCall"] == []


def test_a_fleet_tenant_cannot_read_the_events_of_the_tenant_served_before(dsn: str) -> None:
    for schema, name, source in (("a_victim", "Writer", WRITER), ("b_thief", "Reader", READER)):
        with EventStore(dsn, schema=schema, max_size=1) as store:
            store.migrate()
            deploy(store, [{"file": f"{name}.js", "source": source}], lifecycles={name: "async"})
            store.append({"id": "s1", "type": "S", "data": {"$type": "Secret", "text": f"{schema}-card-4111"}})
    seen: list[str] = []

    def make(key: StoreKey, shared: Shared) -> Daemon:
        seen.append(key.schema)
        return Daemon(key.dsn, schema=key.schema, page_size=100, poll_interval=0.05, shared=shared)

    fleet = Fleet([Catalog(dsn, ["a_victim", "b_thief"])], make, poll_interval=0.05, discover_every=0.1,
                  max_attached=1)  # fmt: skip
    assert fleet.run(until_caught_up=True)
    assert seen == ["a_victim", "b_thief"]
    with EventStore(dsn, schema="b_thief", max_size=1) as store:
        reader = fetch_view(store, "Reader")["Reader"]
    assert "a_victim-card-4111" not in json.dumps(reader), reader
