"""One daemon process for scenario 13: one store, or many served by one fleet; started, told when to begin.

    python bench/fleet_process.py DSN one|many [MAX_ATTACHED]

It imports jsproj and warms a V8 worker (a fleet: the workers its stores take in turn), prints ``ready``;
on a line on stdin it runs until caught up (a :class:`~jsproj.follow.daemon.Daemon` of schema public, or a
:class:`~jsproj.follow.fleet.Fleet` of every store of the database, with its defaults), then prints a JSON
line with the seconds that took, and exits.
The bench samples the memory of this process and its children (the V8 workers) meanwhile.
"""

from __future__ import annotations

import json
import sys
import time

from jsproj.engine.projections import Projections
from jsproj.follow.daemon import Daemon, Shared
from jsproj.follow.fleet import Catalog, Fleet, StoreKey

WARM = "projections.aggregate('Warm').by({ $init: function () { return {}; } });"
POLL = 0.05


def main() -> int:
    dsn, mode = sys.argv[1], sys.argv[2]
    Projections([{"file": "Warm.js", "source": WARM}]).close()  # imports and a worker's start, before the clock

    def make(key: StoreKey, shared: Shared) -> Daemon:
        return Daemon(key.dsn, schema=key.schema, poll_interval=POLL, shared=shared)

    bound = {"max_attached": int(sys.argv[3])} if len(sys.argv) > 3 else {}
    worker = (Fleet([Catalog(dsn)], make, poll_interval=POLL, **bound) if mode == "many"
              else Daemon(dsn, poll_interval=POLL))  # fmt: skip
    if isinstance(worker, Fleet):
        worker.warm()  # its V8 workers started, as a fleet that has been running has them
    print("ready", flush=True)
    if not sys.stdin.readline():
        return 1  # the bench went away
    started = time.perf_counter()
    caught_up = worker.run(until_caught_up=True)
    print(json.dumps({"caught_up": caught_up, "seconds": time.perf_counter() - started}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
