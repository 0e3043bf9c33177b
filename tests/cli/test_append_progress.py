"""``jsproj append`` of a large file in a terminal (a real pseudo-terminal, pexpect): the progress bar moves with
each batch sent (about 1 MB of messages), while the file is appended in one transaction -- a reader meanwhile
sees none of its events or all of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pexpect
import psycopg
import pytest

from clihelp import JSPROJ

pytestmark = pytest.mark.slow  # ~6 MB appended through the CLI

EVENTS = 6000
PADDING = "x" * 900  # ~1 KB a message: ~6 batches of ~1 MB


def test_the_progress_bar_moves_with_each_batch_and_the_append_is_one_transaction(dsn: str, tmp_path: Path) -> None:
    file = tmp_path / "events.jsonl"
    lines = (json.dumps({"id": f"s-{n % 500}", "type": "S", "data": {"$type": "A", "pad": PADDING}})
             for n in range(EVENTS))  # fmt: skip
    file.write_text("\n".join(lines) + "\n")
    child = pexpect.spawn(str(JSPROJ), ["append", str(file), "--dsn", dsn],
                          env={"TERM": "xterm", "PATH": "/usr/bin:/bin", "COLUMNS": "120"}, encoding="utf-8",
                          timeout=120, dimensions=(24, 120))  # fmt: skip
    shown: list[int] = []
    seen_by_a_reader: set[int] = set()
    with psycopg.connect(dsn, autocommit=True) as reader:
        while child.expect([rf"(\d+)/{EVENTS}", pexpect.EOF]) == 0:
            shown.append(int(child.match.group(1)))
            seen_by_a_reader.add(reader.execute("select count(*) from pge_events").fetchone()[0])
        assert reader.execute("select count(*) from pge_events").fetchone()[0] == EVENTS
    child.close()
    assert child.exitstatus == 0, child.before
    assert shown == sorted(shown), "it only moves forward"
    moving = sorted({n for n in shown if 0 < n < EVENTS})
    assert len(moving) >= 4, f"a value per batch sent, not 0 until the end: {shown}"
    assert seen_by_a_reader <= {0, EVENTS}, "one transaction: none of the events, or all of them"
    assert re.search(rf"appended {EVENTS} events in {EVENTS} messages", child.before or "")
