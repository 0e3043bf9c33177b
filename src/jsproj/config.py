"""Settings: flags, else ``JSPROJ_*`` environment variables, else ``jsproj.toml``, else defaults.

``jsproj.toml`` is read from the nearest folder holding it, from the current
one up (the project folder, see :func:`jsproj.tools.default_database.project_dir`), from
its ``[jsproj]`` table::

    [jsproj]
    dsn = "postgresql://app@db.internal/app"   # absent: the embedded database
    schema = "public"
    engine = "python"             # python | plpython | plv8 | pljs
    projections = "projections"   # relative to the project folder
    specs = "specs"
    replicas = ["host=standby-1 dbname=app"]   # hot standbys reads go to (docs/replicas.md)

    [jsproj.indexes]              # fields to index, per projection (as .index() in the DSL)
    Party = ["location", "party.leader"]

    [jsproj.daemon]               # jsproj daemon's options (each also JSPROJ_<OPTION>; flags win)
    page_size = 20000
    poll_interval = 1.0
    projections = ["Traveled"]
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsproj import errors
from jsproj.store.identifiers import check_schema, field_path

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from jsproj.tools.postgres_cluster import Cluster

DEFAULT_SCHEMA = "public"
DEFAULT_ENGINE = "python"
#: What runs inline projections: this Python process, or the database (docs/deploy.md).
ENGINES = ("python", "plpython", "plv8", "pljs")
KEYS = {"dsn", "schema", "engine", "projections", "specs"}
LISTS = {"replicas"}  # of strings
TABLES = {"indexes", "daemon"}
#: ``[jsproj.daemon]``: the daemon's options (``jsproj daemon --help``), each also a JSPROJ_* variable.
DAEMON_SETTINGS: dict[str, tuple[type, ...]] = {
    "page_size": (int,),
    "poll_interval": (int, float),
    "timeout": (int, float),
    "memory_limit": (int,),
    "metrics_port": (int,),
    "metrics_host": (str,),
    "retention_interval": (int, float),
    "projections": (list,),
}


@dataclass(frozen=True)
class ProjectFile:
    """The ``[jsproj]`` table of a project's ``jsproj.toml`` (empty when there is none)."""

    path: Path | None
    values: dict[str, str]
    indexes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # [jsproj.indexes]: projection -> fields
    daemon: dict[str, Any] = field(default_factory=dict)  # [jsproj.daemon]: the daemon's options
    replicas: tuple[str, ...] = ()  # hot standbys' DSNs, to read from (docs/replicas.md)

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def folder(self, key: str, default: str) -> Path:
        """A folder setting, relative to the project file's folder (or the current one)."""
        value = Path(self.values.get(key) or default)
        return value if self.path is None or value.is_absolute() else self.path.parent / value


def project_file(start: Path | None = None) -> ProjectFile:
    """The project's ``jsproj.toml``, checked: unknown keys and wrong types are errors."""
    from jsproj.tools.default_database import project_dir

    path = project_dir(start) / "jsproj.toml"
    if not path.is_file():
        return ProjectFile(None, {})
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise errors.InputError(f"{path}: not valid TOML: {exc}") from None
    outside = sorted(set(document) - {"jsproj"})
    if outside:
        raise errors.InputError(
            f"{path}: unknown top-level setting {outside[0]!r}: jsproj's settings go in the [jsproj] table "
            f"(known: {', '.join(sorted(KEYS | LISTS | TABLES))})"
        )
    table = document.get("jsproj", {})
    if not isinstance(table, dict):
        raise errors.InputError(f"{path}: [jsproj] must be a table")
    unknown = sorted(set(table) - KEYS - LISTS - TABLES)
    if unknown:
        known = ", ".join(sorted(KEYS | LISTS | TABLES))
        raise errors.InputError(f"{path}: unknown setting {unknown[0]!r} (known: {known})")
    values = {key: value for key, value in table.items() if key not in TABLES | LISTS}
    for key, value in values.items():
        if not isinstance(value, str):
            raise errors.InputError(f"{path}: {key} must be a string, not {type(value).__name__}")
    if values.get("engine") and values["engine"] not in ENGINES:
        raise errors.InputError(f"{path}: engine is one of {', '.join(ENGINES)}, not {values['engine']!r}")
    replicas = table.get("replicas", [])
    if not isinstance(replicas, list) or not all(isinstance(dsn, str) and dsn for dsn in replicas):
        raise errors.InputError(f"{path}: replicas must be a list of connection strings, not {replicas!r}")
    indexes, daemon = _indexes(path, table.get("indexes", {})), _daemon(path, table.get("daemon", {}))
    return ProjectFile(path, values, indexes, daemon, tuple(replicas))


def _daemon(path: Path, table: object) -> dict[str, Any]:
    """``[jsproj.daemon]``: option name -> value, the names and types checked (the values by the daemon's options)."""
    if not isinstance(table, dict):
        raise errors.InputError(f"{path}: jsproj.follow.daemon must be a table of the daemon's options, not a value")
    for key, value in table.items():
        kinds = DAEMON_SETTINGS.get(key)
        if kinds is None:
            known = ", ".join(sorted(DAEMON_SETTINGS))
            raise errors.InputError(f"{path}: unknown daemon setting {key!r} (known: {known})")
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = {int: "whole number", float: "number", str: "string", list: "list"}[kinds[-1]]
            raise errors.InputError(f"{path}: jsproj.follow.daemon.{key} must be a {kind}, not {value!r}")
        if isinstance(value, list) and not all(isinstance(name, str) for name in value):
            raise errors.InputError(f"{path}: jsproj.follow.daemon.projections must be a list of projection names")
    return dict(table)


def _indexes(path: Path, table: object) -> dict[str, tuple[str, ...]]:
    """``[jsproj.indexes]``: a projection name to a list of field names, checked (the names at deploy)."""
    if not isinstance(table, dict):
        raise errors.InputError(f"{path}: jsproj.indexes must be a table of projection = [fields], not a value")
    indexes: dict[str, tuple[str, ...]] = {}
    for name, fields in table.items():
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise errors.InputError(
                f"{path}: jsproj.indexes.{name} must be a list of field names (strings), not {fields!r}"
            )
        for one in fields:
            try:
                field_path(one)
            except errors.InvalidFieldError as exc:
                raise exc.replace(f"{path}: jsproj.indexes.{name}: {exc.message}") from None
        indexes[name] = tuple(fields)
    return indexes


def resolve_dsn(
    dsn: str | None = None,
    *,
    create: bool = True,
    keep: bool = True,
    on_start: Callable[[Path, Cluster], None] | None = None,
) -> str:
    """The connection string to use, starting the embedded database when none is given (and creating it,
    unless ``create`` is False: then a project without one is an error; ``on_start`` is told when it
    started one; ``keep``: see :func:`jsproj.tools.default_database.ensure_running`). Validate the other
    settings first: this may start a server."""
    chosen = explicit_dsn(dsn)
    if chosen:
        return chosen
    from jsproj.tools import default_database as embedded

    return embedded.ensure_running(create=create, keep=keep, on_start=on_start).dsn


def explicit_dsn(dsn: str | None = None) -> str | None:
    """The connection string from the flag, the environment or ``jsproj.toml``; None means the embedded database."""
    return dsn or os.environ.get("JSPROJ_DSN") or project_file().get("dsn") or None


def resolve_replicas(replicas: Sequence[str] | None = None) -> tuple[str, ...]:
    """The hot standbys to read from: those given (``--replica``, ``connect(replicas=...)``), else
    ``replicas`` in ``jsproj.toml``, else none (docs/replicas.md)."""
    return tuple(replicas) if replicas else project_file().replicas


def resolve_schema(schema: str | None = None) -> str:
    """The schema to use: ``--schema``, else ``JSPROJ_SCHEMA``, else ``jsproj.toml``, else ``public``."""
    return check_schema(schema or os.environ.get("JSPROJ_SCHEMA") or project_file().get("schema") or DEFAULT_SCHEMA)


def resolve_engine(engine: str | None = None) -> str:
    """The inline engine: ``--engine``, else ``JSPROJ_ENGINE``, else ``jsproj.toml``, else ``python``."""
    chosen = engine or os.environ.get("JSPROJ_ENGINE") or project_file().get("engine") or DEFAULT_ENGINE
    if chosen not in ENGINES:
        raise errors.InputError(f"the engine is one of {', '.join(ENGINES)}, not {chosen!r}")
    return chosen


def resolve_folder(key: str, flag: Path | None = None, start: Path | None = None) -> Path:
    """A folder setting (``projections`` or ``specs``): the flag, else ``JSPROJ_<KEY>``, else
    ``jsproj.toml`` (relative to its folder), else ``<key>`` in ``start`` (the current folder)."""
    if flag is not None:
        return flag
    from_env = os.environ.get(f"JSPROJ_{key.upper()}")
    if from_env:
        return Path(from_env)
    found = project_file(start)
    if found.path is not None:
        return found.folder(key, key)
    return (start or Path()) / key
