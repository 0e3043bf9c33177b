"""Equivalence under randomness: random projection sets over random event logs give identical views in
every host — Node, the Python simulation, inline on the Python engine and in the database, the async
daemon (building and following), and live aggregation.

Projections come from a small grammar of the DSL's kinds and extensions. JSPROJ_EQUIVALENCE_EXAMPLES
sets how many sets are tried (a handful in `make test`, more in `make soak`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jsproj.tools.hosts import Job

from conformance_hosts import NOW, hosts, without_stack

EXAMPLES = int(os.environ.get("JSPROJ_EQUIVALENCE_EXAMPLES", "3"))
EVENT_TYPES = ["A", "B", "C"]

OPERATIONS = {
    "count": "state.n = (state.n || 0) + 1;",
    "sum": "state.sum = (state.sum || 0) + evt.v;",
    "log": "state.log = (state.log || []).concat([evt.$type + ':' + evt.v]).slice(-4);",
    "replace": "return { last: evt.v, version: meta.version, stream: meta.streamId };",
    "delete": "return projections.DELETE;",
    "meta": "state.position = meta.position; state.type = meta.eventType; state.when = meta.timestamp;",
    "guarded": "if (evt.v > 10) { state.big = (state.big || 0) + 1; } else { state.small = evt.v; }",
}
KEYS = {
    "one": "return 'k' + (evt.v % 3);",
    "fanout": "return ['all', 'k' + (evt.v % 2)];",
    "maybe": "return evt.v > 5 ? 'high' : null;",
}

handlers = st.dictionaries(st.sampled_from([*EVENT_TYPES, "$any"]), st.sampled_from(sorted(OPERATIONS)), min_size=1,
                           max_size=3)  # fmt: skip


@st.composite
def projection(draw: st.DrawFn, name: str) -> str:
    kind = draw(st.sampled_from(["stream", "aggregate", "view", "event"]))
    if kind == "event":
        event_type = draw(st.sampled_from(EVENT_TYPES))
        return (f"projections.projectEvent('{event_type}').named('{name}')"
                ".by(function (evt, meta) { return { v: evt.v, stream: meta.streamId, version: meta.version }; });")  # fmt: skip
    chosen = draw(handlers)
    body = ",\n  ".join(
        f"{key}: function (state, evt, meta) {{ {OPERATIONS[op]} }}" for key, op in sorted(chosen.items())
    )
    if draw(st.booleans()):
        body = "$init: function () { return { started: true }; },\n  " + body
    if kind == "stream":
        head = f"projections.projectStream('{draw(st.sampled_from(['X', 'Y']))}').named('{name}')"
    elif kind == "aggregate":
        head = f"projections.aggregate('{name}')"
    else:
        head = f"projections.projectView('{name}').identifiedBy(function (evt) {{ {KEYS[draw(st.sampled_from(sorted(KEYS)))]} }})"
    return f"{head}.by({{\n  {body}\n}});"


@st.composite
def event_log(draw: st.DrawFn) -> list[dict]:
    streams = {f"s{n}": draw(st.sampled_from(["X", "Y"])) for n in range(draw(st.integers(1, 4)))}
    messages, created = [], set()
    for _ in range(draw(st.integers(1, 12))):
        stream = draw(st.sampled_from(sorted(streams)))
        events = [{"$type": draw(st.sampled_from(EVENT_TYPES)), "v": draw(st.integers(-5, 20))}
                  for _ in range(draw(st.integers(1, 4)))]  # fmt: skip
        message = {"id": stream, "data": events}
        if stream not in created:
            message["type"] = streams[stream]
            created.add(stream)
        messages.append(message)
    return messages


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_projections_give_the_same_views_in_every_host(data: st.DataObject, databases, tmp_path_factory) -> None:
    case = tmp_path_factory.mktemp("equivalence")
    (case / "projections").mkdir()
    count = data.draw(st.integers(1, 4), label="projections")
    for n in range(count):
        (case / "projections" / f"P{n}.js").write_text(data.draw(projection(f"P{n}"), label=f"P{n}"))
    (case / "events.jsonl").write_text("\n".join(json.dumps(m) for m in data.draw(event_log(), label="events")))
    run = Job(Path(case) / "projections", Path(case) / "events.jsonl", now=NOW, page_size=3)
    outputs = {name: without_stack(host.run(run)) for name, host in hosts(databases).items()}
    reference = outputs["python"]
    for name, output in outputs.items():
        assert output == reference, f"{name} differs from the Python simulation:\n{json.dumps(output)[:2000]}"
