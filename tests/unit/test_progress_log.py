"""The daemon's progress lines (jsproj.follow.daemon.progress_log): one per projection every so many seconds of a
long catch-up, with the events so far and the rate since the line before -- on a clock the test moves."""

from __future__ import annotations

from jsproj.follow.daemon.progress_log import ProgressLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_ten_seconds_per_projection_with_the_total_and_the_rate_since_the_last() -> None:
    said: list[tuple[str, dict[str, object]]] = []
    clock = Clock()
    log = ProgressLog(lambda level, message, **fields: said.append((message, fields)), clock=clock)
    for _ in range(9):  # 9 s of pages of 1,000 events, a second apart: nothing said yet
        log.add("Orders", 1000)
        clock.now += 1
    assert said == []
    clock.now += 1
    log.add("Orders", 1000)  # 10 s after the first page
    log.add("Customers", 5)  # another projection's clock starts now
    assert said == [("Orders: 10,000 events applied so far (1,000 events/s)",
                     {"projection": "Orders", "events": 10000, "events_per_second": 1000})]  # fmt: skip
    clock.now += 20
    log.add("Orders", 4000, building=True)
    assert said[-1][0] == "Orders: 14,000 events folded into its build so far (200 events/s)"
    log.add("Orders", 0)
    assert len(said) == 2, "no second line within the interval"
    clock.now += 10
    log.add("Customers", 0)
    assert [m for m, _ in said if m.startswith("Customers")] == ["Customers: 5 events applied so far (0 events/s)"]
