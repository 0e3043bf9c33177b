"""Upcasters in the Python host: a log in the newest shape gives the views of the upcast history, and an
upcaster, projection code as a handler is, gets no more than one (docs/dsl.md#upcasters).

The engine's own behaviour (chains, renames, what is checked, how it fails) is js/test/upcast.test.js; every
host runs the conformance case ``upcasting``; tests/store/test_upcasting.py the stores, deploys and an
in-database engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jsproj import errors
from jsproj.engine.projections import CallOptions, Projections, read_folder
from jsproj.engine.simulation import simulate

from projections import HOSTILE_UPCASTERS, UPCASTER_REACHES_NOTHING

CASE = Path(__file__).resolve().parents[1] / "conformance" / "upcasting"
NOW = "2026-01-01T00:00:00.000Z"


def test_a_log_written_in_the_newest_shape_gives_the_views_of_the_upcast_history() -> None:
    """The conformance case's history (three shapes, an old name) and the same log in the newest shape give
    the same views, with the upcasters or without them: what the case's expected.json holds."""
    expected = json.loads((CASE / "expected.json").read_text("utf-8"))
    newest = (CASE / "newest-shape.jsonl").read_text("utf-8")
    sources = read_folder(CASE / "projections")
    with Projections(sources) as loaded:
        assert simulate(loaded, newest, now=NOW) == expected
        assert simulate(loaded, (CASE / "events.jsonl").read_text("utf-8"), now=NOW) == expected
    with Projections([s for s in sources if s["file"] != "upcasters.js"]) as without:
        assert simulate(without, newest, now=NOW) == expected


@pytest.fixture(scope="module")
def hostile() -> Iterator[Projections]:
    """One sandbox for every attack, as an application's would be: each after the others."""
    with Projections(HOSTILE_UPCASTERS, timeout=0.25, memory_limit=64 * 1024 * 1024) as loaded:
        yield loaded


def lines(*events: dict[str, Any]) -> str:
    """Record lines (js/lib/records.js) of events of one stream, positions 1, 2, ..."""
    return "\n".join(
        "\t".join([str(n), '"h"', '"H"', str(n), "2026-01-01 00:00:00+00", "null", json.dumps(e["$type"]),
                   f"00000000-0000-4000-8000-{n:012d}", json.dumps({k: v for k, v in e.items() if k != "$type"})])
        for n, e in enumerate(events, 1)
    )  # fmt: skip


def seen(loaded: Projections, *events: dict[str, Any]) -> Any:
    """The aggregate Seen after the events, in one call."""
    result = loaded.apply_lines(lines(*events), {"Seen": {"Seen": None}})
    if result.errors:
        raise result.errors[0]
    return result.changes["Seen"].upserts["Seen"]


def test_an_upcaster_reaches_nothing_of_the_host_and_defines_nothing(hostile: Projections) -> None:
    assert seen(hostile, {"$type": "ReachHost"})["reach"] == UPCASTER_REACHES_NOTHING
    with pytest.raises(errors.UpcastError) as caught:
        seen(hostile, {"$type": "Reenter"})
    assert caught.value.message.startswith("upcaster Reenter from version 1 (Upcasters.js) failed on Reenter event ")
    assert caught.value.projection == "Seen" and caught.value.position == 1


def test_an_upcaster_keeps_nothing_between_events_that_changes_the_log_or_what_projections_saw(
    hostile: Projections,
) -> None:
    events = [{"$type": "Keep", "marks": []} for _ in range(3)]
    # skipping a failing event folds the document again from the call's events: as they were upcast
    page = lines(*events, {"$type": "Reenter"})
    result = hostile.apply_page(page, {"Seen": {"Seen": None}}, CallOptions(on_error={"Seen": "skip"}))
    assert [e.position for e in result.errors] == [4]
    assert result.changes["Seen"].upserts["Seen"]["keeps"] == [["changed in place"]] * 3
    assert page == lines(*events, {"$type": "Reenter"}) and events == [{"$type": "Keep", "marks": []}] * 3


@pytest.mark.parametrize(
    ("attack", "kind"),
    # (a hoard on a busy machine may reach the time limit first: either limit stops it)
    [("Loop", errors.SandboxTimeoutError), ("Hoard", errors.SandboxLimitError)],
)
def test_an_upcaster_is_stopped_at_the_limits_of_a_handler_and_named(
    hostile: Projections, attack: str, kind: type[errors.JsprojError]
) -> None:
    with pytest.raises(kind) as caught:
        seen(hostile, {"$type": attack})
    assert re.match(rf"upcaster {attack} from version 1 \(on {attack} event at position 1\) (ran|went) past the "
                    r"(time limit of 0\.25 s|memory limit of 64 MB)$", caught.value.message), caught.value.message  # fmt: skip
    assert caught.value.info["upcaster"] == f"{attack} from version 1"
    assert seen(hostile, {"$type": "Keep", "marks": []})["keeps"] == [["changed in place"]], "and the host goes on"
