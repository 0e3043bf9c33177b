"""The event store on PostgreSQL: append, gap-safe reading, fetching streams.

Appends go through the server-side function ``pge_append(message jsonb)``,
one round trip per message, so that any client (psql included) appends with
the same checks. Readers follow ``read_all``, which only returns events that
no transaction still running can precede: see ``docs/store.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb, set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from jsproj import errors
from jsproj.errors import (
    PythonEngineRequiredError,
    StoreError,
    StoreUnavailableError,
    UnknownPositionError,
    UnknownStreamError,
)
from jsproj.identifiers import check_schema, search_path
from jsproj.migrate import Applied, migrate
from jsproj.python_engine import PythonEngine, apply_records
from jsproj.rows import one, value

DEFAULT_READ_LIMIT = 1000
CONNECT_TIMEOUT = 10
INLINE_PAGE = 1000  # events per engine call when a batch of messages runs Python-engine inline projections


def load_json(data: str | bytes) -> Any:
    """JSON from PostgreSQL as Python values, with a clear error for what Python cannot read.

    jsonb holds nesting far deeper than Python's recursive JSON reader: such
    a document was stored before jsproj limited documents to 512 levels, or
    written by SQL. Reading it is a :class:`~jsproj.errors.UnreadableDocumentError`,
    never a ``RecursionError`` traceback.
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise errors.UnreadableDocumentError(
            "stored JSON is nested deeper than Python can read (jsproj keeps documents within 512 levels; this one "
            "was stored before that limit, or by SQL): read it with SQL (data::text), or rebuild its projection"
        ) from None


#: A stream's version: its last event's (for a row ``s`` of pge_streams).
STREAM_VERSION = "coalesce((select max(version) from pge_events where stream_id = s.id), 0)"


@dataclass(frozen=True)
class AppendResult:
    """What one append did: the stream, its new version, and the events' global positions."""

    stream_id: str
    version: int
    positions: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"streamId": self.stream_id, "version": self.version, "positions": self.positions}


@dataclass(frozen=True)
class RecordedEvent:
    """An event as stored."""

    position: int
    event_id: str
    stream_id: str
    stream_type: str
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] | None
    timestamp: datetime

    @property
    def event(self) -> dict[str, Any]:
        """The event as appended: ``{"$type", "$id", ...data}``."""
        return {"$type": self.type, "$id": self.event_id, **self.data}

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "version": self.version,
            "timestamp": iso(self.timestamp),
            "metadata": self.metadata,
            "event": self.event,
        }


@dataclass(frozen=True)
class Stream:
    """A stream with (some of) its events."""

    id: str
    type: str
    version: int
    events: list[RecordedEvent] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "version": self.version, "events": [e.to_dict() for e in self.events]}


def iso(moment: datetime) -> str:
    """A timestamp as the engine writes it: ISO 8601, UTC, milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_EVENT_COLUMNS = "e.position, e.id::text, e.stream_id, s.type, e.version, e.type, e.data, e.metadata, e.timestamp"


def _event(row: Sequence[Any]) -> RecordedEvent:
    return RecordedEvent(*row)


def translate(exc: psycopg.Error, where: str = "") -> errors.JsprojError:
    """The jsproj error for a database error raised while appending or reading.

    A lookup of the SQLSTATE among the ones the error classes register
    (:func:`jsproj.errors.for_sqlstate`), after the two cases the state
    alone cannot tell: an engine's own description of the error in the
    DETAIL, and a duplicate event id.
    """
    prefix = f"{where}: " if where else ""
    state = exc.sqlstate or ""
    diag = exc.diag
    message = diag.message_primary or str(exc).split("\n", 1)[0]
    detail = _json_detail(diag.message_detail)
    described = _engine_description(state, detail)
    if described is not None:  # an engine error raised in the database, or projection code it stopped
        return errors.from_info({**described, "message": prefix + described["message"]})
    if state == "23505" and diag.constraint_name == "pge_events_id_key":
        return errors.InvalidEventError(prefix + f"an event $id is already stored ({diag.message_detail or message})")
    cls = errors.for_sqlstate(state)
    if cls is not None:
        return cls(prefix + cls.sqlstates[state].format(message=message), **(detail or {}))
    if state.startswith("08") or (isinstance(exc, psycopg.OperationalError) and not state):
        return StoreUnavailableError(prefix + f"PostgreSQL is unreachable: {message}")
    return StoreError(prefix + f"PostgreSQL error {state}: {message}")


def _json_detail(detail: str | None) -> dict[str, Any] | None:
    """A DETAIL that jsproj's SQL wrote as a JSON object, else None."""
    if not detail or not detail.startswith("{"):
        return None
    try:
        parsed = json.loads(detail)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _engine_description(state: str, detail: dict[str, Any] | None) -> dict[str, Any] | None:
    """The error an in-database engine described in the DETAIL: any JP500's, and the projection code a
    JavaScript language stopped (sql/engines/javascript.sql)."""
    if detail is None or not isinstance(detail.get("message"), str):
        return None
    if state == "JP500" and isinstance(detail.get("kind"), str):
        return detail
    # the language's own state (57014 for a cancel, XX000, 53200, ...), with jsproj's description
    return detail if str(detail.get("kind", "")).startswith("Sandbox") else None


class EventStore:
    """Events in PostgreSQL: ``append``, ``read_all``, ``fetch_stream``.

    ``dsn`` is a libpq connection string or URL; tables live in ``schema``.
    Connections come from a pool of ``min_size``..``max_size``.
    """

    def __init__(self, dsn: str, *, schema: str = "public", min_size: int = 1, max_size: int = 8) -> None:
        self.dsn = dsn
        self.schema = check_schema(schema)
        self._search_path = search_path(schema)
        try:  # one direct connection first, to fail fast with PostgreSQL's own reason
            psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT).close()
        except psycopg.Error as exc:
            raise StoreUnavailableError(f"cannot connect to PostgreSQL at {_describe(dsn)}: {_reason(exc)}") from None
        self._engine = PythonEngine()
        self.pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=False,
            name="jsproj",
        )
        try:
            self.pool.open(wait=True, timeout=15)
        except PoolTimeout as exc:
            self.pool.close()
            raise StoreUnavailableError(f"PostgreSQL is unreachable at {_describe(dsn)}: {exc}") from None

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(self._search_path)
        set_json_loads(load_json, conn)

    # -- schema -------------------------------------------------------------

    def migrate(self) -> Applied:
        """Install or upgrade the schema; returns the migrations (and functions files) applied now."""
        with self.pool.connection() as conn:
            try:
                return migrate(conn, self.schema)
            except psycopg.Error as exc:
                raise translate(exc, "migrate") from exc

    # -- appending ----------------------------------------------------------

    def append(
        self,
        message: Mapping[str, Any] | None = None,
        *,
        stream_id: str | None = None,
        type: str | None = None,
        events: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append one message atomically: a message dict, or its fields as keywords.

        Raises :class:`~jsproj.errors.ConcurrencyError` when the stream is not
        at ``expected_version`` and :class:`~jsproj.errors.InvalidEventError`
        for a bad message; either way nothing is written.
        """
        message = _message(message, stream_id, type, events, expected_version, metadata)
        with self.pool.connection() as conn:
            for attempt in (1, 2):
                try:
                    if self._inline(conn):
                        # Pipelined: BEGIN goes with the append, the documents' write with COMMIT,
                        # so an inline append costs two round trips, not four.
                        with conn.pipeline(), conn.transaction():
                            return self._append(conn, message)
                    return self._append(conn, message)
                except PythonEngineRequiredError:
                    if attempt == 2:
                        raise
                    self._engine.forget()  # a deploy added Python-engine projections: load them, retry
                except psycopg.Error as exc:  # raised when the pipeline syncs: the write or the COMMIT
                    raise translate(exc) from exc
        raise AssertionError("unreachable")

    def append_all(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        where: Sequence[str] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[AppendResult]:
        """Append messages in one transaction: all of them, or none if any fails.

        ``where`` names each message in errors (e.g. ``"message 3 (line 3)"``);
        ``on_progress`` is called with each message's event count as it is appended.
        """
        messages = list(messages)
        labels = list(where) if where else [f"message {n + 1}" for n in range(len(messages))]
        with self.pool.connection() as conn:
            for attempt in (1, 2):
                try:
                    inline = self._inline(conn)
                    with conn.pipeline(), conn.transaction():
                        if inline:
                            return self._append_paged(conn, messages, labels, on_progress)
                        results = []
                        for message, label in zip(messages, labels, strict=True):
                            results.append(self._append(conn, message, label))
                            if on_progress is not None:
                                on_progress(len(results[-1].positions))
                        return results
                except PythonEngineRequiredError:
                    if attempt == 2:
                        raise
                    self._engine.forget()
                except psycopg.Error as exc:
                    raise translate(exc) from exc
        raise AssertionError("unreachable")

    def _append_paged(
        self,
        conn: psycopg.Connection,
        messages: Sequence[Mapping[str, Any]],
        labels: Sequence[str],
        on_progress: Callable[[int], None] | None,
    ) -> list[AppendResult]:
        """Append messages in ``conn``'s transaction, running the Python-engine inline projections once per
        page of events (INLINE_PAGE) rather than once per message: the same documents, as views do not
        depend on how events are batched, for one sandbox call per page."""
        conn.execute("select set_config('jsproj.inline_engine', 'python', true)")  # the guard: they are applied
        results: list[AppendResult] = []
        owners: dict[int, str] = {}  # position -> the message's label, to name it in an error
        for message, label in zip(messages, labels, strict=True):
            results.append(self._append_only(conn, message, label))
            owners.update(dict.fromkeys(results[-1].positions, label))
            if on_progress is not None:
                on_progress(len(results[-1].positions))
            if len(owners) >= INLINE_PAGE:
                self._apply_inline(conn, owners)
                owners = {}
        if owners:
            self._apply_inline(conn, owners)
        return results

    def _apply_inline(self, conn: psycopg.Connection, owners: Mapping[int, str]) -> None:
        """Apply the events at ``owners``' positions to the Python-engine inline projections (one engine call)."""
        names = self._engine.loaded().names
        try:
            records, documents, generation = one(
                conn,
                """select '[' || string_agg(r.record, ',' order by r.position) || ']',
                          pge_load_documents(pge_route(array_agg(r.stream_id), array_agg(r.stream_type),
                                                       array_agg(r.type), %s)),
                          (select generation from pge_engine)
                   from pge_records() r where r.position = any(%s)""",
                (list(names), list(owners)),
            )
        except psycopg.Error as exc:
            raise translate(exc, "inline projections") from exc
        loaded = self._engine.loaded()
        if generation != loaded.generation:
            loaded = self._engine.refresh(conn)
        if not loaded.names:
            return
        assert loaded.projections is not None, "names come with their projections"
        try:
            apply_records(conn, loaded.projections, records, loaded.names, documents)
        except errors.JsprojError as exc:
            label = owners.get(exc.info.get("position", -1))
            raise (exc.replace(f"{label}: {exc.message}") if label else exc) from None

    def _inline(self, conn: psycopg.Connection) -> bool:
        """Whether this store must run Python-engine inline projections (loading them on first use)."""
        loaded = self._engine.loaded()
        if loaded.generation is None:
            try:
                loaded = self._engine.refresh(conn)
            except psycopg.Error as exc:
                raise translate(exc, "loading inline projections") from exc
        return bool(loaded.names)

    def _append_only(self, conn: psycopg.Connection, message: Mapping[str, Any], where: str) -> AppendResult:
        """Append one message on ``conn`` without running Python-engine inline projections (the caller does)."""
        try:
            result = value(conn, "select pge_append(%s)", (Jsonb(message, dumps=_dumps),))
        except (ValueError, RecursionError) as exc:
            raise _not_json(exc, where) from None
        except psycopg.Error as exc:
            raise translate(exc, where) from exc
        return AppendResult(result["streamId"], result["version"], result["positions"])

    def _append(self, conn: psycopg.Connection, message: Mapping[str, Any], where: str = "") -> AppendResult:
        """Append one message on ``conn``; with Python-engine inline projections, ``conn`` is in a transaction."""
        loaded = self._engine.loaded()
        try:
            if not loaded.names:
                result = value(conn, "select pge_append(%s)", (Jsonb(message, dumps=_dumps),))
            else:
                result, records, generation, documents = one(
                    conn, "select * from pge_append_records(%s)", (Jsonb(message, dumps=_dumps),)
                )
                if generation != loaded.generation:
                    loaded = self._engine.refresh(conn)
                if loaded.names:
                    assert loaded.projections is not None, "names come with their projections"
                    try:
                        apply_records(conn, loaded.projections, records, loaded.names, documents)
                    except errors.JsprojError as exc:
                        raise exc.replace(f"{where}: {exc.message}") if where else exc from None
        except (ValueError, RecursionError) as exc:
            raise _not_json(exc, where) from None
        except psycopg.Error as exc:
            raise translate(exc, where) from exc
        return AppendResult(result["streamId"], result["version"], result["positions"])

    # -- reading ------------------------------------------------------------

    def read_all(self, after: int = 0, limit: int = DEFAULT_READ_LIMIT) -> list[RecordedEvent]:
        """Events after the one at position ``after`` (0: from the start), at most ``limit``.

        Only events that no running transaction can precede are returned, in
        a stable order (by appending transaction, then position), so a reader
        that follows with ``after=<last position returned>`` never skips an
        event or sees one out of order. Positions are unique but not in
        commit order; ``after`` must be a position returned earlier.
        """
        query = f"""
            select {_EVENT_COLUMNS}
            from pge_events e join pge_streams s on s.id = e.stream_id
            where (e.tx_id, e.position) > (%(tx)s::xid8, %(after)s)
              and e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
            order by e.tx_id, e.position
            limit %(limit)s"""
        with self.pool.connection() as conn:
            try:
                cursor = conn.cursor(row_factory=tuple_row)
                tx = self._cursor_tx(conn, after)
                rows = cursor.execute(query, {"tx": tx, "after": after, "limit": limit}).fetchall()
            except psycopg.Error as exc:
                raise translate(exc, "read_all") from exc
        return [_event(row) for row in rows]

    @staticmethod
    def _cursor_tx(conn: psycopg.Connection, after: int) -> str:
        if after == 0:
            return "0"
        row = conn.execute("select tx_id::text from pge_events where position = %s", (after,)).fetchone()
        if row is None:
            raise UnknownPositionError(f"there is no event at position {after}: pass 0 or a position read_all returned")
        return str(row[0])

    def fetch_stream(self, stream_id: str, from_version: int | None = None, to_version: int | None = None) -> Stream:
        """The stream's id, type, version and its events from ``from_version`` to ``to_version`` (inclusive)."""
        with self.pool.connection() as conn:
            try:
                head = conn.execute(
                    f"select id, type, {STREAM_VERSION} from pge_streams s where id = %s", (stream_id,)
                ).fetchone()
                if head is None:
                    raise UnknownStreamError(f"there is no stream {stream_id!r}", streamId=stream_id)
                rows = conn.execute(
                    f"""select {_EVENT_COLUMNS} from pge_events e join pge_streams s on s.id = e.stream_id
                        where e.stream_id = %s and e.version between %s and %s order by e.version""",
                    (stream_id, from_version or 1, to_version if to_version is not None else head[2]),
                ).fetchall()
            except psycopg.Error as exc:
                raise translate(exc, "fetch_stream") from exc
        return Stream(head[0], head[1], head[2], [_event(row) for row in rows])

    def stream_lines(self, stream_id: str, to_version: int | None = None) -> tuple[Stream, str]:
        """The stream (without events) and its events up to ``to_version`` as record lines.

        The format of ``js/lib/records.js`` (fields of PostgreSQL's own output
        formats, one line per event): about four times cheaper for the server
        to write than JSON records, which is most of a live aggregation's time.
        """
        with self.pool.connection() as conn:
            try:
                row = conn.execute(
                    f"""select s.id, s.type, {STREAM_VERSION},
                               (select coalesce(string_agg(concat_ws(E'\\t', e.position, to_json(e.stream_id),
                                         to_json(s.type), e.version,
                                         to_char(e.timestamp at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00',
                                         coalesce(e.metadata::text, 'null'), to_json(e.type), e.id, e.data),
                                         E'\\n' order by e.version), '')
                                from pge_events e where e.stream_id = s.id and e.version <= %s)
                        from pge_streams s where s.id = %s""",
                    (to_version if to_version is not None else 2**62, stream_id),
                ).fetchone()
            except psycopg.Error as exc:
                raise translate(exc, "stream_lines") from exc
        if row is None:
            raise UnknownStreamError(f"there is no stream {stream_id!r}", streamId=stream_id)
        return Stream(row[0], row[1], row[2]), row[3]

    def streams(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{id: {"type", "version"}}`` for those of ``ids`` that exist."""
        with self.pool.connection() as conn:
            try:
                rows = conn.execute(
                    f"select id, type, {STREAM_VERSION} from pge_streams s where id = any(%s)", (list(ids),)
                ).fetchall()
            except psycopg.Error as exc:
                raise translate(exc, "streams") from exc
        return {row[0]: {"type": row[1], "version": row[2]} for row in rows}

    def close(self) -> None:
        self.pool.close()
        self._engine.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _not_json(exc: ValueError | RecursionError, where: str) -> errors.InvalidEventError:
    """The error for a message json.dumps refused (NaN, a cycle, too deep, ...)."""
    problem = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
    prefix = f"{where}: " if where else ""
    return errors.InvalidEventError(f"{prefix}the message is not JSON: {problem}")


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _message(
    message: Mapping[str, Any] | None,
    stream_id: str | None,
    type_: str | None,
    events: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None,
    expected_version: int | None,
    metadata: Mapping[str, Any] | None,
) -> Mapping[str, Any]:
    fields = {
        "id": stream_id,
        "type": type_,
        "data": events,
        "expected_version": expected_version,
        "metadata": metadata,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    if message is not None:
        if given:
            raise TypeError("pass a message or its fields (stream_id=, events=, ...), not both")
        return message
    if events is None:
        raise TypeError("append() needs a message or events=")
    return {k: list(v) if k == "data" and not isinstance(v, Mapping | str | int) else v for k, v in given.items()}


def _reason(exc: psycopg.Error) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(exc).__name__


def _describe(dsn: str) -> str:
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the given DSN"
    return " ".join(f"{k}={v}" for k, v in info.items() if k in ("host", "port", "dbname", "user"))
