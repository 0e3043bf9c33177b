"""Deploying projections: validate them, register them, create their storage, rebuild.

One deployment is the whole set of projections of a folder, all with one
engine: ``python`` (the Python sandbox, in the appending process), or an
in-database engine: ``plpython`` (V8 through mini-racer under plpython3u),
``plv8`` (PLV8's V8) or ``pljs`` (PL/JS's QuickJS). The SQL is shared by
every engine; only ``pge_engine_call`` — from ``sql/engines/<engine>.sql``,
and for the JavaScript languages the wrapper they share,
``sql/engines/javascript.sql`` — differs. A projection whose source, kind,
lifecycle or engine changed has its documents rebuilt from the event log;
an unchanged one is left alone (its indexed fields may change: indexes are
made and dropped, no document is rebuilt). Deployed projections the set
lacks are removed only with ``prune=True`` (else :class:`PruneRequiredError`
and nothing changes); ``dry_run=True`` reports the plan and changes nothing
(``pge_deploy_plan``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.config import ENGINES
from jsproj.engine.bundle import database_bundle
from jsproj.engine.projections import ProjectionInfo, Projections, Upcasting
from jsproj.engine.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, MB
from jsproj.engine.worker import V8_FLAGS
from jsproj.store.identifiers import check_schema, field_path
from jsproj.store.migrate import schema_script, sql_dir
from jsproj.store.python_engine import rebuild
from jsproj.store.sync import EventStore
from jsproj.store.translate import translate

DATABASE_ENGINES = tuple(engine for engine in ENGINES if engine != "python")
#: The in-database engines that are JavaScript procedural languages (sql/engines/javascript.sql).
LANGUAGE_ENGINES = ("plv8", "pljs")
#: Where plpython3u's engine looks for mini-racer first, unless deploy is given another folder (make pg-extensions
#: installs the pinned mini-racer there).
DEFAULT_PYTHON_PATH = "/usr/local/lib/jsproj/site"
LIFECYCLES = ("inline", "async", "live")
ON_ERROR = ("stop", "dead-letter")
MAX_PARTITIONS = 256  # as pge_projection_definitions checks


@dataclass
class DeployReport:
    """What a deploy did (or, ``dry_run``, would do), projection names per outcome, and events read per
    rebuilt projection."""

    engine: str
    dry_run: bool = False
    prune: bool = False  # whether removals were allowed (a dry run without it lists them, refused)
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rebuilt: dict[str, int] = field(default_factory=dict)
    rebuild: list[str] = field(default_factory=list)  # inline projections rebuilt (a dry run: to rebuild) now
    building: list[str] = field(default_factory=list)  # async projections the daemon will build
    pending: list[str] = field(default_factory=list)  # new versions the daemon builds beside the deployed ones
    retired: list[str] = field(default_factory=list)  # replaced versions' tables dropped (a dry run: kept), "Name v1"
    # per projection, the fields whose indexes were {"created": [...], "dropped": [...]} (pge_sync_indexes)
    indexes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # the files that declare only upcasters: {"added": [...], "changed": [...], "unchanged": [...], "removed": [...]}
    upcaster_files: dict[str, list[str]] = field(default_factory=dict)

    @property
    def refused(self) -> list[str]:
        """A dry run's: the deployed projections the deploy would remove, and so refuse without ``prune``
        (:class:`~jsproj.errors.PruneRequiredError`); empty when the deploy would go ahead."""
        return list(self.removed) if self.dry_run and not self.prune else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "dryRun": self.dry_run,
            "prune": self.prune,
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "rebuilt": self.rebuilt,
            "rebuild": self.rebuild,
            "building": self.building,
            "pending": self.pending,
            "retired": self.retired,
            "indexes": self.indexes,
            "upcasterFiles": self.upcaster_files,
            "refused": self.refused,
        }


def _parse_pairs(option: str, pairs: Sequence[str], allowed: Sequence[str]) -> dict[str, str]:
    """``["Party=async", ...]`` as ``{"Party": "async"}``, each value one of ``allowed``."""
    chosen: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or value not in allowed:
            raise errors.InputError(f"{option} takes NAME={'|'.join(allowed)}, not {pair!r}")
        chosen[name] = value
    return chosen


def parse_lifecycles(pairs: Sequence[str]) -> dict[str, str]:
    """``--lifecycle NAME=inline|async|live`` options as ``{name: lifecycle}``, checked."""
    return _parse_pairs("--lifecycle", pairs, LIFECYCLES)


def parse_on_error(pairs: Sequence[str]) -> dict[str, str]:
    """``--on-error NAME=stop|dead-letter`` options as ``{name: policy}``, checked."""
    return _parse_pairs("--on-error", pairs, ON_ERROR)


def parse_partitions(pairs: Sequence[str]) -> dict[str, int]:
    """``--partitions NAME=N`` options as ``{name: n}``, checked (1 <= n <= 256)."""
    chosen: dict[str, int] = {}
    for pair in pairs:
        name, sep, count = pair.partition("=")
        if not sep or not name or not count.isdigit() or not 1 <= int(count) <= MAX_PARTITIONS:
            raise errors.InputError(f"--partitions takes NAME=N with 1 <= N <= {MAX_PARTITIONS}, not {pair!r}")
        chosen[name] = int(count)
    return chosen


def definitions(
    sources: Sequence[Mapping[str, str]],
    infos: Sequence[ProjectionInfo],
    engine: str,
    lifecycles: Mapping[str, str],
    on_error: Mapping[str, str] | None = None,
    partitions: Mapping[str, int] | None = None,
    indexes: Mapping[str, Sequence[str]] | None = None,
    emits: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The rows ``pge_deploy`` registers, one per projection.

    ``indexes`` (jsproj.toml's ``[jsproj.indexes]``) adds fields to those the
    projections declare with ``.index()``; ``emits`` names the async
    projections that may write events (``--emit``).
    """
    if engine not in ENGINES:
        raise errors.InputError(f"--engine is one of {', '.join(ENGINES)}, not {engine!r}")
    on_error, partitions, indexes = on_error or {}, partitions or {}, indexes or {}
    options = (("--lifecycle", lifecycles), ("--on-error", on_error), ("--partitions", partitions),
               ("--emit", dict.fromkeys(emits, True)))  # fmt: skip
    for option, chosen in (*options, ("[jsproj.indexes]", indexes)):
        unknown = sorted(set(chosen) - {info.name for info in infos})
        if unknown:
            raise errors.UnknownProjectionError(
                f"{option} names projections that are not defined: {', '.join(unknown)}"
            )
    by_file = {s["file"]: s["source"] for s in sources}
    rows = [
        _definition(info, by_file, engine, lifecycles.get(info.name, info.lifecycle), on_error)
        | {
            "partitions": partitions.get(info.name, 1),
            "indexes": _fields(info, indexes.get(info.name, ())),
            "emits": info.name in emits,
        }
        for info in infos
    ]
    for row in rows:
        if row["emits"] and row["lifecycle"] != "async":
            raise errors.InputError(
                f"--emit {row['name']}: only async projections write events (the daemon appends them, exactly once); "
                f"{row['name']} is {row['lifecycle']}: deploy it with --lifecycle {row['name']}=async"
            )
        if row["partitions"] != 1 and (row["lifecycle"] != "async" or row["kind"] not in ("stream", "view")):
            article = "a" if row["lifecycle"] == "live" else "an"
            raise errors.InputError(
                f"--partitions {row['name']}: only async stream and view projections have partitions "
                f"({row['name']} is {article} {row['lifecycle']} {row['kind']} projection)"
            )
        if row["indexes"] and (row["lifecycle"] == "live" or row["kind"] == "aggregate"):
            raise errors.InputError(
                f"{row['name']}: indexes ({', '.join(row['indexes'])}) are for stored projections of many "
                f"documents, and {row['name']} is {'live' if row['lifecycle'] == 'live' else 'an aggregate'}"
            )
    return rows


def _fields(info: ProjectionInfo, configured: Sequence[str]) -> list[str]:
    """The fields a projection is indexed by: its ``.index()`` ones, then the configured ones; checked."""
    fields: list[str] = []
    for name in (*info.indexes, *configured):
        try:
            field_path(name)
        except errors.InvalidFieldError as exc:
            raise exc.replace(f"{info.name}: index: {exc.message}", projection=info.name) from None
        if name not in fields:
            fields.append(name)
    return fields


def _definition(
    info: ProjectionInfo, by_file: Mapping[str, str], engine: str, lifecycle: str, on_error: Mapping[str, str]
) -> dict[str, Any]:
    """The row ``pge_deploy`` registers for one projection. Its event types are the stored ones it is routed
    by (those it handles and their old names); its hash, what decides a rebuild, is its file's -- and, when
    upcasters or renames reach it, theirs too (:func:`input_hash`)."""
    source = by_file[info.file or ""]
    return {
        "name": info.name,
        "kind": info.kind,
        "lifecycle": lifecycle,
        "engine": engine,
        "file": info.file,
        "source": source,
        "hash": input_hash(info, by_file),
        "streamType": info.stream_type,
        "eventTypes": list(info.routed_types),
        "anyEvent": info.any_event,
        "onError": on_error.get(info.name, "stop"),
        "version": info.version,
    }


def input_hash(info: ProjectionInfo, by_file: Mapping[str, str]) -> str:
    """What decides whether a deploy changes a projection: the SHA-256 of its file, and of the files of the
    upcasters and renames that reach it (its input: :attr:`ProjectionInfo.upcast_by`), by name. Whole files,
    as for projections: an upcaster may call any function of its file. With none reaching it, the hash of its
    file alone, as before upcasters (a store deployed then sees no change)."""
    digest = hashlib.sha256(by_file[info.file or ""].encode())
    if info.upcast_by:
        for name in sorted({u.file or "" for u in info.upcast_by} - {info.file or ""}):
            digest.update(f"\0{name}\0{hashlib.sha256(by_file[name].encode()).hexdigest()}".encode())
        digest.update(("\0upcast by " + ", ".join(sorted(str(u) for u in info.upcast_by))).encode())
    return digest.hexdigest()


def upcaster_files(
    sources: Sequence[Mapping[str, str]], upcasting: Iterable[Upcasting], infos: Sequence[ProjectionInfo]
) -> list[dict[str, str]]:
    """The files ``pge_deploy_upcasters`` keeps: those that declare upcasters or renames (``upcasting``, and
    those reaching ``infos``) and define no projection (a file that defines one is deployed with it)."""
    declaring = {u.file for u in upcasting} | {u.file for info in infos for u in info.upcast_by}
    defining = {info.file for info in infos}
    return [
        {"file": s["file"], "source": s["source"], "hash": hashlib.sha256(s["source"].encode()).hexdigest()}
        for s in sources
        if s["file"] in declaring and s["file"] not in defining
    ]


def engine_sql(engine: str, schema_sql: str) -> str:
    """The SQL creating ``pge_engine_call`` for an in-database engine, for a quoted schema name.

    A JavaScript language's engine gets a new secret token each time: its
    ``pge_engine_run`` passes it to the context's engines, which run a
    schema's engine only for the token in that schema's own function.
    """
    if engine not in DATABASE_ENGINES:
        raise errors.InputError(f"the in-database engines are {', '.join(DATABASE_ENGINES)}, not {engine!r}")
    text = (sql_dir() / "engines" / f"{engine}.sql").read_text("utf-8")
    if engine in LANGUAGE_ENGINES:
        shared = (sql_dir() / "engines" / "javascript.sql").read_text("utf-8")
        replacements = {"@language@": engine, "@token@": secrets.token_hex(16), "@schema_js@": json.dumps(schema_sql)}
        for placeholder, value in replacements.items():
            shared = shared.replace(placeholder, value)
        text += "\n" + shared
    return text.replace("@v8_flags@", repr(V8_FLAGS)).replace("@schema@", schema_sql)


def deploy(
    store: EventStore,
    sources: Sequence[Mapping[str, str]],
    *,
    engine: str = "python",
    lifecycles: Mapping[str, str] | None = None,
    on_error: Mapping[str, str] | None = None,
    partitions: Mapping[str, int] | None = None,
    indexes: Mapping[str, Sequence[str]] | None = None,
    emits: Sequence[str] = (),
    timeout: float | None = None,
    memory_limit: int | None = None,
    python_path: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
    promote: bool = True,
) -> DeployReport:
    """Deploy ``sources`` (every projection file) to the store, in one transaction.

    Appends wait while it runs (documents are rebuilt before it commits).
    ``partitions`` splits async stream and view projections by document key
    so that several daemons share each one (docs/daemon.md). ``indexes``
    adds fields to index to those of ``.index()`` (docs/views.md); indexes
    are made and dropped without rebuilding any document. ``emits`` names the
    async projections whose handlers may write events (KurrentDB's ``emit``
    and ``linkTo``: docs/from-kurrentdb.md#emit-and-linkto): a permission
    of its own, which the daemon appends under; a deploy without it takes it back. Deployed
    projections missing from ``sources`` are removed with their documents
    only with ``prune``: else :class:`~jsproj.errors.PruneRequiredError`
    names them, and nothing changes. ``dry_run`` checks the projections and
    returns the plan (what would be added, changed, removed, rebuilt,
    indexed), changing nothing, not even the schema's migrations, and
    holding off no append. A new ``.version()`` of an async projection is
    built beside the deployed one (``pending``) and switched to when built;
    ``promote=False`` waits for :func:`jsproj.projections.promote.promote` instead.
    ``timeout`` (seconds) and ``memory_limit`` (bytes) limit every call of
    projection code, here and in the in-database engines, which the store
    keeps them for (``pge_engine``); ``python_path`` is where plpython3u finds
    mini-racer (default :data:`DEFAULT_PYTHON_PATH`).
    """
    if not dry_run:
        store.migrate()
    with _load(sources, timeout, memory_limit) as loaded:
        rows = definitions(loaded.sources, loaded.infos, engine, lifecycles or {}, on_error, partitions, indexes, emits)
        if not promote:
            rows = [row | {"promote": "manual"} for row in rows]
        files = upcaster_files(loaded.sources, loaded.upcasting, loaded.infos)
        report = DeployReport(engine, dry_run=dry_run, prune=prune)
        with store.connection() as conn:
            try:
                if dry_run or not promote:
                    outcome = _value(conn, "select pge_deploy_plan(%s)", (Jsonb(rows),))
                    report.upcaster_files = _value(conn, "select pge_upcaster_plan(%s)", (Jsonb(files),))
                    if not promote and outcome["changed"]:  # --no-promote would not apply to them: say so
                        raise errors.InputError(no_promote_refusal(outcome["changed"], "promote=False"),
                                                changed=outcome["changed"])  # fmt: skip
                if not dry_run:
                    with conn.transaction():
                        limits = _engine_settings(loaded, python_path)
                        report.upcaster_files = _value(conn, "select pge_deploy_upcasters(%s)", (Jsonb(files),))
                        outcome, report.rebuilt = _deploy_in(conn, store.schema, loaded, rows, engine, prune, limits)
            except psycopg.Error as exc:
                raise _worded(translate(exc, "deploy"), "pass prune=True") from exc
        for key in ("added", "changed", "unchanged", "removed", "indexes", "rebuild", "pending", "retired"):
            setattr(report, key, outcome[key])
        async_names = {row["name"] for row in rows if row["lifecycle"] == "async"}
        report.building = [name for name in outcome["added"] + outcome["changed"] if name in async_names]
        return report


def prune_refusal(removed: Sequence[str], how: str) -> str:
    """Why a deploy that would remove ``removed`` is refused, and ``how`` to allow it in the caller's terms
    (``pass prune=True``, ``pass --prune``)."""
    return (f"this deploy would remove {', '.join(removed)} (deployed, not in the set) with their documents: "
            f"{how} to remove them, or deploy a set that includes them")  # fmt: skip


def no_promote_refusal(changed: Sequence[str], option: str) -> str:
    """Why a deploy that waits for promote (``option``: ``promote=False``, ``--no-promote``) is refused: it would
    rebuild ``changed`` in place, which have no new ``.version()`` to build beside the deployed one."""
    return (f"{option} waits to promote new versions, and {', '.join(changed)} change without a higher .version(): "
            "the deploy would rebuild them in place; give each a higher .version() to build it beside the deployed "
            f"one, or deploy without {option}")  # fmt: skip


def _worded(error: errors.JsprojError, how: str) -> errors.JsprojError:
    """A deploy's refusal to remove projections worded for its caller; any other error as it is."""
    if isinstance(error, errors.PruneRequiredError) and isinstance(error.info.get("removed"), list):
        return error.replace(prune_refusal(error.info["removed"], how))
    return error


def _deploy_in(
    conn: psycopg.Connection,
    schema: str,
    loaded: Projections,
    rows: list[dict[str, Any]],
    engine: str,
    prune: bool,
    limits: tuple[float, int, str],
) -> tuple[Any, dict[str, int]]:
    """``pge_deploy`` and the rebuilds of its outcome, in the caller's transaction: its outcome, and the
    events each rebuilt projection read. ``limits``: the engines' time limit (s), memory limit (MB), Python path."""
    bundle, bundle_hash = database_bundle()
    if engine in DATABASE_ENGINES:
        conn.execute(engine_sql(engine, sql.Identifier(schema).as_string(conn)))
    outcome = _value(conn, "select pge_deploy(%s, %s, %s, %s)", (Jsonb(rows), bundle, bundle_hash, prune))
    conn.execute("select pge_set_engine_settings(%s, %s, %s)", limits)
    if engine in DATABASE_ENGINES:
        _probe(conn, engine)
    rebuilt: dict[str, int] = {}
    for name in outcome["rebuild"]:
        if engine in DATABASE_ENGINES:
            rebuilt[name] = _value(conn, "select pge_rebuild(%s)", (name,))
        else:
            rebuilt[name] = rebuild(conn, loaded, name)
    return outcome, rebuilt


def _engine_settings(loaded: Projections, python_path: str | None) -> tuple[float, int, str]:
    """What pge_set_engine_settings takes: the limits the projections were checked under (seconds, MB), the path."""
    sandbox = loaded.sandbox
    return sandbox.timeout, sandbox.memory_limit // MB, python_path or DEFAULT_PYTHON_PATH


def _load(sources: Sequence[Mapping[str, str]], timeout: float | None, memory_limit: int | None) -> Projections:
    """The projections of ``sources`` in a sandbox, with the limits given (the defaults for the others)."""
    return Projections(
        sources,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        memory_limit=DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit,
    )


def _value(conn: psycopg.Connection, query: LiteralString, params: Sequence[Any]) -> Any:
    """The one value ``query`` answers."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, query
    return row[0]


def _probe(conn: psycopg.Connection, engine: str) -> None:
    """Check that the in-database engine loads the deployed projections, before committing."""
    answer = _value(conn, "select pge_engine_call('describe', '')::jsonb", ())
    if "error" in answer:
        raise errors.from_info({**answer["error"], "message": f"the {engine} engine: {answer['error']['message']}"})


def deployment_sql(
    sources: Sequence[Mapping[str, str]],
    infos: Sequence[ProjectionInfo],
    *,
    engine: str,
    schema: str = "public",
    lifecycles: Mapping[str, str] | None = None,
    indexes: Mapping[str, Sequence[str]] | None = None,
    on_error: Mapping[str, str] | None = None,
    partitions: Mapping[str, int] | None = None,
    emits: Sequence[str] = (),
    prune: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    python_path: str = DEFAULT_PYTHON_PATH,
    upcasting: Sequence[Upcasting] = (),
) -> str:
    """The complete SQL a DBA applies by hand (``psql -1 -f``) to deploy with an in-database engine.

    It migrates the schema with the script ``jsproj migrate`` runs (the same
    records, checks and errors), creates the engine's ``pge_engine_call``, deploys the upcaster files
    (``upcasting``: :attr:`Projections.upcasting <jsproj.engine.projections.Projections.upcasting>`) and the
    definitions, and rebuilds the documents of new and changed stored projections. The
    deployed projections the set lacks are removed only with ``prune``
    (else the script stops there, changing nothing). ``on_error``, ``partitions`` and ``emits`` are
    :func:`deploy`'s.
    """
    check_schema(schema)
    schema_sql = sql.Identifier(schema).as_string()
    rows = definitions(sources, infos, engine, lifecycles or {}, on_error, partitions, indexes, emits)
    files = upcaster_files(sources, upcasting, infos)
    if engine not in DATABASE_ENGINES:
        raise errors.InputError(f"jsproj sql writes the SQL of an in-database engine ({', '.join(DATABASE_ENGINES)})")
    bundle, bundle_hash = database_bundle()
    parts = [
        f"-- jsproj deployment: {len(rows)} projections, engine {engine}, schema {schema}",
        "-- Apply in one transaction: psql -v ON_ERROR_STOP=1 -1 -f this.sql",
        "-- The schema: what `jsproj migrate` runs (src/jsproj/store/migrate.py).",
        schema_script(schema),
    ]
    parts += [
        f"-- the {engine} engine",
        engine_sql(engine, schema_sql),
        "-- its limits (seconds, MB) and where plpython3u finds mini-racer",
        f"select pge_set_engine_settings({float(timeout)!r}, {memory_limit // MB}, {_literal(python_path)});",
        "-- the files that declare only upcasters (the others are deployed with their projections)",
        f"select pge_deploy_upcasters({_literal(json.dumps(files))}::jsonb);",
        "-- the definitions, and the rebuild of new and changed stored projections",
        "select pge_rebuild(name) from jsonb_array_elements_text(",
        f"  pge_deploy({_literal(json.dumps(rows))}::jsonb,",
        f"             {_literal(bundle)}, {_literal(bundle_hash)}, prune => {'true' if prune else 'false'})",
        "  -> 'rebuild') as name;",
    ]
    return "\n".join(parts) + "\n"


def _literal(text: str) -> str:
    """A SQL string literal (dollar quoting would need a tag the text cannot contain)."""
    return "'" + text.replace("'", "''") + "'"
