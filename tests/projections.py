"""Projections that tests in more than one file deploy or load, defined once; a file's own stay in it.

:func:`sources` makes the files a deploy takes from ``Name=source`` pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Stream projection Party: the towns each Quest stream reached, in order; an event at Shadar Logoth throws
#: (from line 4 of the file: tests/store/test_deploy.py asserts the stack). Aggregate Visits: towns reached in all.
PARTY = """projections.projectStream('Quest').named('Party').by({
  $init: function () { return { towns: [] }; },
  TownReached: function (state, evt) {
    if (evt.location === 'Shadar Logoth') throw new Error('nobody comes back from ' + evt.location);
    state.towns.push(evt.location);
  }
});
projections.aggregate('Visits').by({ TownReached: function (state) { state.n = (state.n || 0) + 1; } });"""

#: Stream projection Party: how many events each Quest stream has, ``{"n": N}``.
PARTY_EVENTS = "projections.projectStream('Quest').named('Party').by({ $any: function (s) { s.n = (s.n || 0) + 1; } });"

#: Accounts, one projection of each stored kind: stream projection Balance (per Account stream), aggregate
#: Totals (every event: how many, the sum of amounts), view ByAmount (events by amount % 3: how many).
COUNTERS = """
projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, moves: 0 }; },
  Deposited: function (s, e) { s.balance += e.amount; s.moves += 1; },
  Withdrawn: function (s, e) { s.balance -= e.amount; s.moves += 1; }
});
projections.aggregate('Totals').by({
  $init: function () { return { events: 0, sum: 0 }; },
  $any: function (s, e) { s.events += 1; s.sum += e.amount || 0; }
});
projections.projectView('ByAmount').identifiedBy(function (e) { return e.amount % 3; }).by({
  $any: function (s) { s.n = (s.n || 0) + 1; }
});
"""

#: Aggregate Slow: counts every event after a loop of 6e5 steps, so that a daemon's page takes a while.
SLOW = """
projections.aggregate('Slow').by({
  $any: function (s) { var x = 0; for (var i = 0; i < 6e5; i++) x = (x * 31 + i) | 0; s.n = (s.n || 0) + 1 + (x & 0); }
});
"""


def counting(name: str) -> str:
    """Aggregate ``name``: how many events there are, of every type, ``{"n": N}``."""
    return f"projections.aggregate('{name}').by({{ $any: function (s) {{ s.n = (s.n || 0) + 1; }} }});"


def sources(**files: str) -> list[dict[str, str]]:
    """The projection files ``Name.js`` with their source, as deploy and Projections take them."""
    return [{"file": f"{name}.js", "source": source} for name, source in files.items()]


#: Hostile upcasters (tests/hostile/upcast/Upcasters.js, one attack per event type) and aggregate Seen, which
#: keeps what projections were handed: tests/engine/test_upcasters.py (Python host), tests/store/test_upcasting.py.
HOSTILE_UPCASTERS = [
    {"file": "Upcasters.js", "source": (Path(__file__).parent / "hostile" / "upcast" / "Upcasters.js").read_text()}
]
#: What an upcaster finds of the host (attack ReachHost): what a handler finds (tests/hostile/Hostile.js), and
#: no way to define anything.
UPCASTER_REACHES_NOTHING = {
    "entries": ["undefined"] * 10,
    "sloppyThis": "undefined",
    "globals": [],
    "define": "refused",
}


#: Aggregate Keeper: keeps every Secret event's text in a file-level variable; aggregate Spy looks for it (and for
#: Keeper) from another file, or another store: tests/engine/test_sandbox_recycling.py, test_shared_context.py.
KEEPER = """
var stash = [];
projections.aggregate('Keeper').by({
  $init: function () { return { n: 0 }; },
  Secret: function (state, evt) { state.n += 1; stash.push(evt.text); }
});
"""
SPY = """
projections.aggregate('Spy').by({
  Other: function (state) { state.seen = typeof stash === 'undefined' ? null : stash; state.keeper = typeof Keeper; }
});
"""


def record(event_type: str, data: dict[str, object] | None = None) -> str:
    """One event (``$type`` ``event_type``, with ``data``) of stream s at position 1, as the engine's records."""
    event = {"$type": event_type, "$id": "e1", **(data or {})}
    return ('[{"position": 1, "streamId": "s", "streamType": "S", "version": 1, "timestamp": '
            f'"2026-01-01T00:00:00.000Z", "event": {json.dumps(event)}}}]')  # fmt: skip
