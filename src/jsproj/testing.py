"""The pytest plugin (entry point ``jsproj`` in ``pytest11``): throwaway stores as fixtures, specs as test items.

Installed with jsproj, it is active in every pytest run of the environment
(``-p no:jsproj`` turns it off). Everything it adds is named ``jsproj``:

- fixtures ``jsproj_dsn`` (the database: ``--jsproj-dsn``, else
  ``JSPROJ_DSN``, else the project's embedded database), ``jsproj_schema``
  (a fresh schema per test, dropped after it), ``jsproj_store`` (an
  :class:`~jsproj.store.sync.EventStore` migrated in that schema),
  ``jsproj_deployed`` (the same store with the project's projections
  deployed), ``jsproj_projections_folder`` and ``jsproj_projections``
  (the projections loaded in a sandbox, for
  :func:`~jsproj.engine.simulation.simulate`);
- spec items: every ``*.json`` file directly in the specs folder (ini
  ``jsproj_specs``, else ``JSPROJ_SPECS`` / ``jsproj.toml`` / ``specs``) is
  collected, one item per spec, run in the hosts of ini
  ``jsproj_spec_hosts`` (default ``python``). JSON files anywhere else are
  never collected.

docs/testing.md documents it for users.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from jsproj import errors

if TYPE_CHECKING:
    from jsproj.engine.projections import Projections
    from jsproj.store.sync import EventStore
    from jsproj.tools.hosts import Host
    from jsproj.tools.specs import Spec, SpecResult

__all__ = ["SpecFailed", "SpecFile", "SpecItem", "catch_up"]

SCHEMA_PREFIX = "jsproj_test_"
#: What ``jsproj_spec_hosts`` may name: besides these, ``database-<engine>`` for each engine.
HOST_NAMES = ("python", "node", "database")
_DSN = pytest.StashKey[str]()
_FOLDERS = pytest.StashKey[dict[str, Path]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jsproj", "jsproj projections and specs")
    group.addoption(
        "--jsproj-dsn",
        dest="jsproj_dsn",
        metavar="DSN",
        help="PostgreSQL for the jsproj fixtures and database spec hosts (each test in a schema of its own); "
        "default: JSPROJ_DSN, else the project's embedded database.",
    )
    parser.addini("jsproj_projections", "jsproj: the projections folder (default: as jsproj.toml says, or projections)")
    parser.addini("jsproj_specs", "jsproj: the folder whose *.json files are collected as specs (default: specs)")
    parser.addini(
        "jsproj_spec_hosts",
        "jsproj: where each spec runs: python, node, database, database-<engine> (default: python)",
        type="args",
        default=["python"],
    )


def pytest_configure(config: pytest.Config) -> None:
    from jsproj.config import ENGINES

    known = {*HOST_NAMES, *(f"database-{engine}" for engine in ENGINES)}
    for name in config.getini("jsproj_spec_hosts"):
        if name not in known:
            raise pytest.UsageError(f"jsproj_spec_hosts: unknown host {name!r} (known: {', '.join(sorted(known))})")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SpecFile | None:
    """A ``*.json`` file directly in the specs folder of a jsproj project is a spec file; no other file is
    looked at (another project's ``specs/openapi.json`` is not a spec)."""
    if file_path.suffix != ".json" or not _a_jsproj_project(parent.config):
        return None
    if file_path.parent.resolve() != project_folder(parent.config, "specs"):
        return None
    return SpecFile.from_parent(parent, path=file_path)


def _a_jsproj_project(config: pytest.Config) -> bool:
    """Whether specs are collected: the ini option ``jsproj_specs`` or ``JSPROJ_SPECS`` names the folder,
    or pytest's root folder is in a jsproj project (a ``jsproj.toml``)."""
    from jsproj.tools.default_database import project_dir

    if config.getini("jsproj_specs") or os.environ.get("JSPROJ_SPECS"):
        return True
    return (project_dir(config.rootpath) / "jsproj.toml").is_file()  # read (and checked) when specs are


# -- settings -------------------------------------------------------------------


def project_folder(config: pytest.Config, key: str) -> Path:
    """``projections`` or ``specs``: the ini option ``jsproj_<key>`` (relative to the ini file), else as the
    jsproj commands resolve it from the root folder (``JSPROJ_<KEY>``, ``jsproj.toml``, ``<key>``)."""
    folders = config.stash.setdefault(_FOLDERS, {})
    if key not in folders:
        from jsproj.config import resolve_folder

        value = str(config.getini(f"jsproj_{key}") or "")
        base = config.inipath.parent if config.inipath else config.rootpath
        try:
            folder = base / value if value else resolve_folder(key, start=config.rootpath)
        except errors.JsprojError as exc:  # a broken jsproj.toml: an error of the folder being collected
            raise pytest.Collector.CollectError(f"jsproj: {exc}") from None
        folders[key] = folder.resolve()
    return folders[key]


def session_dsn(config: pytest.Config) -> str:
    """``--jsproj-dsn``, else ``JSPROJ_DSN``, else the embedded database of the project at the root folder
    (started if needed and left running, as every jsproj command leaves it). ``jsproj.toml``'s dsn is
    deliberately not used: tests go to an application's database only when told to."""
    if _DSN not in config.stash:
        chosen = config.getoption("jsproj_dsn") or os.environ.get("JSPROJ_DSN")
        if not chosen:
            from jsproj.tools.default_database import ensure_running, project_dir

            chosen = ensure_running(project_dir(config.rootpath)).dsn
        config.stash[_DSN] = chosen
    return config.stash[_DSN]


# -- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def jsproj_dsn(pytestconfig: pytest.Config) -> str:
    """The database the jsproj fixtures use (nothing in it is touched but the schemas they create)."""
    return session_dsn(pytestconfig)


@pytest.fixture
def jsproj_schema(jsproj_dsn: str) -> Iterator[str]:
    """A new empty schema for one test, dropped (with everything in it) after the test."""
    schema = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:16]}"
    with psycopg.connect(jsproj_dsn, autocommit=True) as conn:
        # Not "if not exists": the schema dropped afterwards is always one this fixture made.
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    try:
        yield schema
    finally:
        with psycopg.connect(jsproj_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))


@pytest.fixture
def jsproj_store(jsproj_dsn: str, jsproj_schema: str) -> Iterator[EventStore]:
    """An event store, migrated, in the test's own schema: empty at the start of every test."""
    from jsproj.store.sync import EventStore

    with EventStore(jsproj_dsn, schema=jsproj_schema, max_size=4) as store:
        store.migrate()
        yield store


@pytest.fixture(scope="session")
def jsproj_projections_folder(pytestconfig: pytest.Config) -> Path:
    """The project's projections folder (ini ``jsproj_projections``, else as ``jsproj`` resolves it)."""
    return project_folder(pytestconfig, "projections")


@pytest.fixture
def jsproj_deployed(jsproj_store: EventStore, jsproj_projections_folder: Path) -> EventStore:
    """``jsproj_store`` with the project's projections deployed: engine python, each one's own lifecycle
    (async ones are applied by :func:`catch_up`)."""
    from jsproj.engine.projections import read_folder
    from jsproj.projections.deploy import deploy

    deploy(jsproj_store, read_folder(jsproj_projections_folder))
    return jsproj_store


@pytest.fixture
def jsproj_projections(jsproj_projections_folder: Path) -> Iterator[Projections]:
    """The project's projections loaded in a sandbox of the test's own, for ``simulate``."""
    from jsproj.engine.projections import Projections

    with Projections.from_folder(jsproj_projections_folder) as loaded:
        yield loaded


def catch_up(store: EventStore) -> None:
    """Apply everything appended so far to the store's async projections (a daemon until caught up)."""
    from jsproj.follow.daemon import Daemon

    Daemon(store.dsn, schema=store.schema, poll_interval=0.05).run(until_caught_up=True)


# -- spec items -----------------------------------------------------------------


class SpecFailed(Exception):
    """A spec's expectation not met in one host or more; ``results`` are the failed outcomes."""

    def __init__(self, results: Sequence[SpecResult]) -> None:
        super().__init__(f"spec {results[0].spec.name!r} failed in {', '.join(r.host for r in results)}")
        self.results = list(results)


class SpecFile(pytest.File):
    """A spec file: one item per spec in it."""

    def collect(self) -> Iterator[SpecItem]:
        from jsproj.tools.specs import read_spec_file

        try:
            specs = read_spec_file(self.path)
        except errors.SpecFileError as exc:
            raise self.CollectError(str(exc)) from None
        names = [spec.name for spec in specs]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise self.CollectError(f"{self.path}: two specs are named {twice[0]!r}")
        for spec in specs:
            yield SpecItem.from_parent(self, name=spec.name, spec=spec)


class SpecItem(pytest.Item):
    """One spec, run in every host of ``jsproj_spec_hosts``; a failure shows each host's diff."""

    def __init__(self, *, spec: Spec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def runtest(self) -> None:
        from jsproj.tools.specs import run_specs

        folder = project_folder(self.config, "projections")
        results = run_specs(folder, [self.spec], spec_hosts(self.config))
        failed = [result for result in results if not result.passed]
        if failed:
            raise SpecFailed(failed)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, SpecFailed):
            return render_failure(excinfo.value.results, self.config.rootpath)
        if isinstance(excinfo.value, errors.JsprojError):  # projections that do not load, a store unreachable
            return f"spec {self.spec.name!r} could not run: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"spec: {self.spec.name}"


def spec_hosts(config: pytest.Config) -> list[Host]:
    """The hosts named by ``jsproj_spec_hosts``, in that order."""
    from jsproj.tools.hosts import NodeHost, PythonHost, StoreHost, schemas_in

    hosts: list[Host] = []
    for name in config.getini("jsproj_spec_hosts"):
        if name == "python":
            hosts.append(PythonHost())
        elif name == "node":
            node = shutil.which("node")
            if node is None:
                raise errors.InputError("jsproj_spec_hosts names node, but there is no node on the PATH")
            hosts.append(NodeHost(node))
        else:  # database or database-<engine>, checked by pytest_configure
            engine = name.partition("-")[2] or "python"
            hosts.append(StoreHost(schemas_in(session_dsn(config)), engine))
    return hosts


def render_failure(results: Sequence[SpecResult], root: Path) -> str:
    """A failed spec as text: its name and file, then each host's problems (the diff of the documents)."""
    spec = results[0].spec
    try:
        where = spec.file.resolve().relative_to(root.resolve())
    except ValueError:
        where = spec.file
    lines = [f"spec {spec.name!r} ({where}) failed in {', '.join(r.host for r in results)}"]
    for result in results:
        lines.append(f"  in {result.host}:")
        lines.extend(f"    {line}" for line in result.problems)
    return "\n".join(lines)
