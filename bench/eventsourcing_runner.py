"""The `eventsourcing` package (PyPI) doing jsproj's benchmark jobs, the way its users write them.

    python bench/eventsourcing_runner.py append --events N --single N
    python bench/eventsourcing_runner.py project --events N --streams S

Configured from the environment as the package reads it (PERSISTENCE_MODULE,
POSTGRES_HOST, ...; see scenario_eventsourcing.py). Prints one JSON object.

* append: an aggregate saved with 1,000 new events (one transaction each),
  then one event per save from 1 and from 8 threads.
* project: S aggregates get N events (setup, in a child process), then the
  package's ProjectionRunner folds them into a materialised view in
  PostgreSQL: per aggregate a running total and count, and one global total
  (jsproj's stream projection + aggregate), each update committed with the
  runner's tracking record. Timed from building the runner until its
  tracking position reaches the last event; the view is checked.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import Application
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from psycopg.sql import SQL, Identifier


def amount_for(number: int, seq: int) -> int:
    return (number * 7 + seq) % 97 + 1


class Account(Aggregate):
    @event("Opened")
    def __init__(self, number: int, amount: int) -> None:
        self.number = number
        self.total = amount

    @staticmethod
    def create_id(number: int, amount: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"/accounts/{number}")

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.total += amount


class Ledger(Application[UUID]):
    pass


class LedgerView(PostgresTrackingRecorder):
    """The materialised view: accounts (a stream projection) and totals (an aggregate)."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        base = self.tracking_table_name.removesuffix("_tracking")
        schema = Identifier(self.datastore.schema)
        accounts, totals = Identifier(f"{base}_accounts"), Identifier(f"{base}_totals")
        self.sql_create_statements += [
            SQL("CREATE TABLE IF NOT EXISTS {0}.{1} (account_id uuid PRIMARY KEY, total bigint NOT NULL, "
                "count bigint NOT NULL)").format(schema, accounts),
            SQL("CREATE TABLE IF NOT EXISTS {0}.{1} (id int PRIMARY KEY, total bigint NOT NULL, "
                "count bigint NOT NULL)").format(schema, totals),
            SQL("INSERT INTO {0}.{1} VALUES (1, 0, 0) ON CONFLICT DO NOTHING").format(schema, totals),
        ]  # fmt: skip
        self.upsert_account = SQL(
            "INSERT INTO {0}.{1} AS a VALUES (%s, %s, 1) ON CONFLICT (account_id) "
            "DO UPDATE SET total = a.total + EXCLUDED.total, count = a.count + 1"
        ).format(schema, accounts)
        self.update_totals = SQL("UPDATE {0}.{1} SET total = total + %s, count = count + 1 WHERE id = 1").format(
            schema, totals
        )
        self.select_totals = SQL("SELECT total, count FROM {0}.{1} WHERE id = 1").format(schema, totals)
        self.count_accounts = SQL("SELECT count(*) AS n FROM {0}.{1}").format(schema, accounts)

    def add_amount(self, account_id: UUID, amount: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            curs.execute(self.upsert_account, (account_id, amount), prepare=True)
            curs.execute(self.update_totals, (amount,), prepare=True)

    def totals(self) -> tuple[int, int, int]:
        with self.datastore.transaction() as curs:
            curs.execute(self.select_totals)
            row = curs.fetchone()
            curs.execute(self.count_accounts)
            return row["total"], row["count"], curs.fetchone()["n"]


class LedgerTotals(Projection[LedgerView]):
    name = "ledgertotals"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        pass

    @process_event.register
    def _(self, domain_event: Account.Opened, tracking: Tracking) -> None:
        self.view.add_amount(domain_event.originator_id, domain_event.amount, tracking)

    @process_event.register
    def _(self, domain_event: Account.Deposited, tracking: Tracking) -> None:
        self.view.add_amount(domain_event.originator_id, domain_event.amount, tracking)


def append(events: int, singles: int) -> dict[str, float]:
    app = Ledger()
    try:
        rates = {}
        started, written = time.perf_counter(), 0
        while written < events:  # 1,000 events per save: one transaction
            account = Account(written, 1)
            for i in range(999):
                account.deposit(i % 97 + 1)
            written += len(app.save(account))
        rates["batched"] = written / (time.perf_counter() - started)
        for threads in (1, 8):
            per_thread = singles // threads

            def writer(k: int, per_thread: int = per_thread, threads: int = threads) -> None:
                account = Account(10_000_000 + k + 100 * threads, 1)
                app.save(account)
                for i in range(per_thread - 1):
                    account.deposit(i % 97 + 1)
                    app.save(account)  # one event, one transaction

            workers = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
            started = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            rates[f"single_{threads}"] = per_thread * threads / (time.perf_counter() - started)
        return rates
    finally:
        app.close()


def seed(events: int, streams: int) -> None:
    app = Ledger()
    accounts = [Account(n, amount_for(n, 0)) for n in range(streams)]
    app.save(*accounts)
    for seq in range(1, events // streams):
        for account in accounts:
            account.deposit(amount_for(account.number, seq))
        app.save(*accounts)  # one event per aggregate per transaction, interleaved across streams
    app.close()


def project(events: int, streams: int) -> dict[str, float]:
    subprocess.run([sys.executable, __file__, "seed", "--events", str(events), "--streams", str(streams)], check=True)
    probe = Ledger()
    last = probe.recorder.max_notification_id()
    probe.close()
    started = time.perf_counter()
    with ProjectionRunner(application_class=Ledger, projection_class=LedgerTotals, view_class=LedgerView) as runner:
        while not runner.view.has_tracking_id(runner.app_name, last):
            runner.run_forever(timeout=0.005)  # re-raises what the processing thread raised
        seconds = time.perf_counter() - started
        total, count, accounts = runner.view.totals()
    per_stream = events // streams
    expected = sum(amount_for(n, s) for n in range(streams) for s in range(per_stream))
    assert (total, count, accounts) == (expected, last, streams), (total, count, accounts, expected, last)
    return {"events": last, "seconds": seconds, "peakRss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", choices=["append", "project", "seed"])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=800)
    parser.add_argument("--streams", type=int, default=1_000)
    args = parser.parse_args()
    os.environ.setdefault("PERSISTENCE_MODULE", "eventsourcing.postgres")
    if args.job == "seed":
        seed(args.events, args.streams)
        return 0
    result = append(args.events, args.single) if args.job == "append" else project(args.events, args.streams)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
