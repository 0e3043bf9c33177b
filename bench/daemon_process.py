"""One daemon process for scenario 7's two daemons: started, then told when to begin, then kept until read.

    python bench/daemon_process.py DSN PAGE_SIZE

What ``jsproj daemon --until-caught-up`` runs (:class:`~jsproj.follow.daemon.Daemon`), in three steps on
its stdin and stdout, so that the bench measures the catch-up and not the process's startup, and reads the
process's CPU time in /proc before it exits:

1. imports jsproj, starts a sandbox worker (as a running daemon has one: it takes it), registers the daemon
   in ``pge_daemons`` (as a running daemon is: the others count it at their first balance, rather than taking
   every unit and giving back the extra a second later), prints ``ready``;
2. on a line on stdin, runs until caught up, then prints a JSON line: the units it held after each balance
   that changed them, and for every page it committed, how many events of the log the page read and where
   each of its units got to (transaction, position);
3. exits when stdin closes (its V8 worker, kept for another sandbox, with it).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Set

import psycopg

from jsproj.engine.projections import Projections
from jsproj.follow.daemon import Daemon
from jsproj.follow.daemon.hooks import DaemonHooks
from jsproj.follow.daemon.pages import Applied
from jsproj.follow.daemon.progress import Unit

WARM = "projections.projectStream('Account').named('Warm').by({ $init: function () { return {}; } }).async();"


def unit_name(unit: Unit) -> str:
    return f"{unit.name}/{unit.partition}"


class Recorder(DaemonHooks):
    """What the daemon did: the units it held, in order of change, and each page's moves."""

    def __init__(self) -> None:
        self.held: list[list[str]] = []
        self.pages: list[dict[str, object]] = []

    def holding(self, held: Set[Unit]) -> None:
        names = sorted(map(unit_name, held))
        if not self.held or self.held[-1] != names:
            self.held.append(names)

    def page_committed(self, applied: Applied) -> None:
        self.pages.append({"read": applied.count,
                           "reached": {unit_name(u): [int(tx), position] for u, (tx, position) in
                                       applied.reached.items()}})  # fmt: skip


def main() -> int:
    dsn, page_size = sys.argv[1], int(sys.argv[2])
    Projections([{"file": "Warm.js", "source": WARM}]).close()  # the worker waits for the daemon's sandbox
    recorder = Recorder()
    daemon = Daemon(dsn, page_size=page_size, hooks=recorder)
    with psycopg.connect(dsn, autocommit=True) as conn:  # its heartbeat updates the row (and adds its backend)
        conn.execute("insert into pge_daemons (id, host, pid) values (%s, %s, %s)",
                     (daemon.id, socket.gethostname(), os.getpid()))  # fmt: skip
    print("ready", flush=True)
    if not sys.stdin.readline():
        return 1  # the bench went away
    caught_up = daemon.run(until_caught_up=True)
    print(json.dumps({"caught_up": caught_up, "held": recorder.held, "pages": recorder.pages}), flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
