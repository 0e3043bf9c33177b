"""Fixtures: a real PostgreSQL the tests start themselves, and a fresh database per test.

One throwaway cluster runs for the whole session (system server binaries,
a temp folder, its own socket). Each test that asks for ``dsn`` gets a new
database cloned from a migrated template, so tests never see each other's
events.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import Cluster, temporary_cluster

TEMPLATE = "jsproj_template"
# A test database is a file copy of the template: with fsync off that is the cheapest clone there is.
CLONE = "template {template} strategy file_copy"

# Scratch folders (tmp_path, the clusters of the tests, doc scripts' projects) on tmpfs when there is
# one: PostgreSQL's files -- a database per test -- cost several times less system time there than on
# a journaling disk. Where there is none, the system's temp dir.
SHM = Path("/dev/shm")
if SHM.is_dir() and os.access(SHM, os.W_OK | os.X_OK):
    tempfile.tempdir = str(SHM)
_numbers = itertools.count(1)


#: What a throwaway server for tests needs no CPU for: JIT compiling (a test's queries are small, and LLVM's
#: compile costs more than it saves), autovacuum (every database lives for one test), WAL for replicas.
TEST_SETTINGS = {"jit": "off", "autovacuum": "off", "wal_level": "minimal", "max_wal_senders": "0"}


@contextmanager
def running_cluster(prefix: str = "jsproj-pg-") -> Iterator[Cluster]:
    """A throwaway PostgreSQL (not durable: tests need no fsync), started, and destroyed after."""
    server = temporary_cluster(prefix=prefix, **TEST_SETTINGS)
    server.init(durable=False)
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    with running_cluster() as server:
        yield server


def dsn_for(cluster: Cluster, database: str) -> str:
    return f"host={cluster.socket_dir} port={cluster.port} user=jsproj dbname={database}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--partitioned-log",
        action="store_true",
        help="Every test database's log partitioned by position, 64 events a partition (docs/partitioning.md): "
        "run existing suites on a partitioned store.",
    )


@pytest.fixture(scope="session")
def template(cluster: Cluster, request: pytest.FixtureRequest) -> str:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f"create database {TEMPLATE}")
    with EventStore(dsn_for(cluster, TEMPLATE), max_size=1) as store:
        store.migrate()
    if request.config.getoption("--partitioned-log"):
        partition_template(dsn_for(cluster, TEMPLATE))
    return TEMPLATE


def partition_template(dsn: str) -> None:
    """The template's log partitioned: 64 positions a partition up to 1,024 (tests cross several), then one of
    15,360 (events some tests insert by SQL, which makes no partition ahead), then 64 again as appends go."""
    from jsproj.store.partitioning import partition_log

    partition_log(dsn, size=64, headroom=1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute("select made_to from pge_log_layout").fetchone()[0] < 1024:
            conn.execute("select pge_log_add_partition()")
        conn.execute("update pge_log_layout set partition_size = 16384 - made_to")
        conn.execute("select pge_log_add_partition()")
        conn.execute("update pge_log_layout set partition_size = 64")


@contextmanager
def fresh_database(cluster: Cluster, template: str) -> Iterator[str]:
    """A fresh, migrated database (a clone of the template), dropped at the end."""
    name = f"test_{next(_numbers)}"
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f"create database {name} " + CLONE.format(template=template))
    try:
        yield dsn_for(cluster, name)
    finally:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute(f"drop database {name} with (force)")


@pytest.fixture
def dsn(cluster: Cluster, template: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    with fresh_database(cluster, template) as made:
        yield made


@pytest.fixture
def store(dsn: str) -> Iterator[EventStore]:
    with EventStore(dsn) as opened:
        yield opened


@pytest.fixture
def databases(cluster, template) -> Iterator[Callable[[], str]]:
    """Fresh migrated databases, dropped after the test."""
    made: list[str] = []

    def new() -> str:
        name = f"conformance_{len(made)}_{id(made)}"
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute(f"create database {name} " + CLONE.format(template=template))
        made.append(name)
        return dsn_for(cluster, name)

    yield new
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(f"drop database {name} with (force)")
