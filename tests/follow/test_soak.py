"""The short soak `make test` runs: mixed load with daemons killed, and every invariant holding."""

from __future__ import annotations

import pytest

from soak import soak


@pytest.mark.slow
@pytest.mark.server
def test_a_short_soak_keeps_every_invariant() -> None:
    report = soak(duration=8, writers=3)
    assert report["mismatch_detail"] == dict.fromkeys(report["invariants"], 0)
    assert report["mismatches"] == 0
    assert report["events_stored"] > 200 and report["daemon_kills"] >= 2  # a kill every 1-3 s
    assert report["events_read_by_the_follower"] == report["events_stored"]
