"""Reading the documents of deployed projections: one by id, pages, queries by field (:class:`View`).

A query is built by pure functions (:func:`find_query`, :func:`count_query`,
:func:`get_query`: a :class:`Query`, composed SQL and its parameters, with no
connection) and run by :class:`View` on a connection of the store's, so
that an async host runs the same queries on its own connections.

``where`` maps document fields to what they must hold (docs/views.md):

- ``{"location": "Moria"}``: containment (``data @> '{"location": "Moria"}'``);
  a dotted key is a nested field (``{"party.leader": "Frodo"}``); an object
  value is contained, not compared (``{"party": {"leader": "Frodo"}}``);
- ``{"size": {"$gt": 3}}``: a comparison, one of ``$eq $ne $gt $gte $lt
  $lte $in``, on the field's jsonb value (a missing field counts as
  ``null``); ``$gt``/``$gte``/``$lt``/``$lte`` take a number or a string and
  match only fields of that JSON type.

Keys are checked (letters, digits and ``_`` per dotted segment: an
:class:`~jsproj.errors.InvalidFieldError` names the key otherwise) and
rendered as SQL literals; values are always parameters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.errors import InvalidFieldError, QueryError, UnknownDocumentError
from jsproj.store import steps
from jsproj.store.identifiers import field_path
from jsproj.store.steps import Steps, ask, run, run_async
from jsproj.store.translate import translate

COMPARISONS = {"$eq": "=", "$ne": "<>", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = (*COMPARISONS, "$in")

#: What :func:`check_definition` reads of a projection: kind, lifecycle and document table.
T = TypeVar("T")

DEFINITION_QUERY = "select kind, lifecycle, pge_document_table(name) from pge_projection_definitions where name = %s"


class Document(NamedTuple):
    """One document of a view: its id and its JSON value (``dict(view.find(...))`` maps ids to values)."""

    id: str
    data: Any


@dataclass(frozen=True)
class Query:
    """A query ready to run: composed SQL and its parameters (``conn.execute(q.text, q.params)``)."""

    text: sql.Composed
    params: tuple[Any, ...]


# -- fields and values ------------------------------------------------------------


def key_expression(path: Sequence[str]) -> sql.Composed:
    """A field's jsonb value, ``null`` when missing: the expression of the indexes jsproj declares
    (``pge_sync_indexes`` in sql/functions/indexes.sql makes the same), so that they serve it."""
    return sql.SQL("coalesce(data #> {}::text[], 'null'::jsonb)").format(sql.Literal("{" + ",".join(path) + "}"))


def _json(value: Any, key: str) -> Jsonb:
    """``value`` as a jsonb parameter, if it is JSON (finite numbers, string keys)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise QueryError(f"where {key!r}: the value is not JSON ({exc})", field=key) from None
    return Jsonb(value)


def _nested(path: Sequence[str], value: Any) -> dict[str, Any]:
    for segment in reversed(path[1:]):
        value = {segment: value}
    return {path[0]: value}


def _merge(into: dict[str, Any], extra: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Two containment objects as one; a field given twice with other values is refused."""
    merged = dict(into)
    for name, value in extra.items():
        if name in merged and isinstance(merged[name], dict) and isinstance(value, dict):
            merged[name] = _merge(merged[name], value, key)
        elif name in merged and merged[name] != value:
            raise QueryError(f"where {key!r}: the field is given twice with different values", field=key)
        else:
            merged[name] = value
    return merged


def _is_operators(value: Any, key: str) -> bool:
    """Whether a where value is a comparison (``{"$gt": 3}``) rather than a value to contain."""
    if not isinstance(value, dict) or not any(isinstance(k, str) and k.startswith("$") for k in value):
        return False
    unknown = sorted(str(k) for k in value if k not in OPERATORS)
    if unknown:
        raise QueryError(
            f"where {key!r}: unknown operator {unknown[0]!r} (known: {', '.join(OPERATORS)}; "
            "a value to contain has no $ keys)",
            field=key,
        )
    return True


def _comparison(path: Sequence[str], key: str, operator: str, operand: Any) -> tuple[sql.Composed, list[Any]]:
    expression = key_expression(path)
    if operator == "$in":
        if not isinstance(operand, list):
            raise QueryError(f"where {key!r}: $in takes a list of values, not {operand!r}", field=key)
        return sql.SQL("{} = any(%s::jsonb[])").format(expression), [[_json(item, key) for item in operand]]
    if operator in ("$eq", "$ne"):
        return sql.SQL("{} {} %s::jsonb").format(expression, sql.SQL(COMPARISONS[operator])), [_json(operand, key)]
    if isinstance(operand, bool) or not isinstance(operand, (int, float, str)):
        raise QueryError(f"where {key!r}: {operator} takes a number or a string, not {operand!r}", field=key)
    if isinstance(operand, float) and not math.isfinite(operand):
        raise QueryError(f"where {key!r}: {operator} takes a finite number, not {operand!r}", field=key)
    typed = "string" if isinstance(operand, str) else "number"  # jsonb orders types apart: compare within one
    condition = sql.SQL("{e} {op} %s::jsonb and jsonb_typeof({e}) = %s").format(
        e=expression, op=sql.SQL(COMPARISONS[operator])
    )
    return condition, [_json(operand, key), typed]


def where_clause(where: Mapping[str, Any] | None) -> tuple[sql.Composable, list[Any]]:
    """The condition of ``where`` (``true`` when empty) and its parameters."""
    if where is None:
        return sql.SQL("true"), []
    if not isinstance(where, Mapping):
        raise QueryError(f"where is a mapping of fields to values, not {type(where).__name__}")
    contained: dict[str, Any] = {}
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    for key, value in where.items():
        path = field_path(key)
        if _is_operators(value, key):
            for operator, operand in value.items():
                condition, more = _comparison(path, key, operator, operand)
                conditions.append(condition)
                params += more
            continue
        _json(value, key)
        contained = _merge(contained, _nested(path, value), key)
        if value is None or isinstance(value, (str, int, float)):
            # A scalar contained in a field is that field's value: said again as an equality, so that a
            # declared index of the field serves it (containment alone can use only a GIN index).
            conditions.append(sql.SQL("{} = %s::jsonb").format(key_expression(path)))
            params.append(_json(value, key))
    if contained:
        conditions.insert(0, sql.SQL("data @> %s::jsonb"))
        params.insert(0, Jsonb(contained))
    return (sql.SQL(" and ").join(conditions) if conditions else sql.SQL("true")), params


# -- queries ----------------------------------------------------------------------


def _order(order_by: str | None) -> tuple[sql.Composable, bool]:
    """The expression to order by (``id``, or a field's value) and whether it is descending."""
    if order_by is None:
        return sql.Identifier("id"), False
    if not isinstance(order_by, str):
        raise QueryError(f"order_by is a field name (or -name for descending), not {order_by!r}")
    descending = order_by.startswith("-")
    name = order_by[1:] if descending else order_by
    if name == "id":
        return sql.Identifier("id"), descending
    try:
        return key_expression(field_path(name)), descending
    except InvalidFieldError as exc:
        raise exc.replace(f"order_by: {exc.message}") from None


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise QueryError(f"limit is a number of documents (0 or more), not {limit!r}")


def find_query(
    table: str,
    where: Mapping[str, Any] | None = None,
    order_by: str | None = None,
    limit: int | None = None,
    after: str | None = None,
) -> Query:
    """``select id, data`` of the documents of ``table`` that match ``where``, in order, paged.

    Ties of ``order_by`` are in id order (descending with it), so that pages
    are stable; ``after`` is the id of the last document of the previous
    page (keyset paging: one index range when the field is indexed).
    """
    _check_limit(limit)
    if after is not None and not isinstance(after, str):
        raise QueryError(f"after is a document id, not {after!r}")
    condition, params = where_clause(where)
    key, descending = _order(order_by)
    direction = sql.SQL("desc" if descending else "asc")
    by_id = isinstance(key, sql.Identifier)
    order = (
        sql.SQL("{k} {d}").format(k=key, d=direction)
        if by_id
        else sql.SQL("{k} {d}, id {d}").format(k=key, d=direction)
    )
    beyond: sql.Composable = sql.SQL("")
    if after is not None:
        compare = sql.SQL("<" if descending else ">")
        if by_id:
            beyond = sql.SQL(" and id {} %s").format(compare)
        else:
            beyond = sql.SQL(" and ({k}, id) {c} (select {k}, id from {t} where id = %s)").format(
                k=key, c=compare, t=sql.Identifier(table)
            )
        params.append(after)
    text = sql.SQL("select id, data from {t} where {w}{b} order by {o}").format(
        t=sql.Identifier(table), w=condition, b=beyond, o=order
    )
    if limit is not None:
        text, params = text + sql.SQL(" limit %s"), [*params, limit]
    return Query(text, tuple(params))


def count_query(table: str, where: Mapping[str, Any] | None = None) -> Query:
    """``select count(*)`` of the documents of ``table`` that match ``where``."""
    condition, params = where_clause(where)
    return Query(sql.SQL("select count(*) from {} where {}").format(sql.Identifier(table), condition), tuple(params))


def get_query(table: str, kind: str, id: str) -> Query:
    """``select data`` of one document (an aggregate's has the aggregate's name as id)."""
    key = sql.Identifier("name" if kind == "aggregate" else "id")
    return Query(sql.SQL("select data from {} where {} = %s").format(sql.Identifier(table), key), (id,))


def check_definition(name: str, row: Sequence[Any] | None) -> tuple[str, str]:
    """The kind and document table of projection ``name`` from its :data:`DEFINITION_QUERY` row;
    an unknown or live projection is an error."""
    if row is None:
        raise errors.UnknownProjectionError(f"there is no deployed projection {name!r}", projection=name)
    if row[1] == "live":
        raise errors.ProjectionError(
            f"{name} is a live projection: nothing is stored; fold a stream with `jsproj live {name} STREAM_ID`",
            projection=name,
        )
    return row[0], row[2]


def queryable_table(name: str, row: Sequence[Any] | None) -> str:
    """The document table :func:`find_query` and :func:`count_query` query for projection ``name``, from its
    :data:`DEFINITION_QUERY` row: an aggregate (one document) is a QueryError, as :func:`check_definition`'s."""
    kind, table = check_definition(name, row)
    if kind == "aggregate":
        raise QueryError(f"{name} is an aggregate: it has one document, read it with get({name!r})", projection=name)
    return table


def parse_where(pairs: Sequence[str]) -> dict[str, Any]:
    """``["location=Moria", 'size={"$gt": 3}']`` as a where mapping: each value parsed as JSON when it
    parses, else taken as a string (``size=3`` is the number 3, ``size='"3"'`` the string)."""
    where: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise QueryError(f"--where takes FIELD=VALUE, not {pair!r}")
        field_path(key)
        if key in where:
            raise QueryError(f"--where gives {key!r} twice", field=key)
        try:
            where[key] = json.loads(text)
        except ValueError:
            where[key] = text
    return where


# -- running them -------------------------------------------------------------------


#: The deployed projections' names, for the "did you mean" of an unknown one.
NAMES_QUERY = "select name from pge_projection_definitions order by name"


def _definition_row_steps(name: str) -> Steps[Sequence[Any]]:
    """Projection ``name``'s :data:`DEFINITION_QUERY` row; an unknown name is an error saying the closest known."""
    row = yield from ask(steps.Query(DEFINITION_QUERY, (name,)), "reading a view")
    if row is None:
        known: list[tuple[Any, ...]] = yield from ask(steps.Query(NAMES_QUERY, (), rows="all"), "reading a view")
        raise errors.unknown_projection(f"there is no deployed projection {name!r}", name, (k for (k,) in known))
    return row  # type: ignore[no-any-return]


def _definition_steps(name: str) -> Steps[tuple[str, str]]:
    row = yield from _definition_row_steps(name)
    return check_definition(name, row)


def _rows_steps(name: str, query: Query, which: str) -> Steps[list[tuple[Any, ...]]]:
    """The rows of ``query`` (read as they come: a document too deep for Python fails as it is read)."""
    try:
        rows: list[tuple[Any, ...]] = yield from ask(
            steps.Query(query.text, query.params, rows="all"), "reading a view"
        )
    except errors.UnreadableDocumentError as exc:
        raise exc.replace(f"projection {name}: {which}: {exc.message}", projection=name) from None
    return rows


def get_steps(name: str, id: str) -> Steps[Any]:
    """:meth:`View.get` as steps, for both stores."""
    kind, table = yield from _definition_steps(name)
    rows = yield from _rows_steps(name, get_query(table, kind, id), f"document {id!r}")
    if not rows:
        raise UnknownDocumentError(f"projection {name} has no document {id!r}", projection=name, id=id)
    return rows[0][0]


def find_steps(
    name: str, where: Mapping[str, Any] | None, order_by: str | None, limit: int | None, after: str | None
) -> Steps[list[Document]]:
    """:meth:`View.find` as steps, for both stores."""
    table = queryable_table(name, (yield from _definition_row_steps(name)))
    rows = yield from _rows_steps(name, find_query(table, where, order_by, limit, after), "a document")
    if not rows and after is not None and order_by not in (None, "id", "-id"):
        if not (yield from _rows_steps(name, get_query(table, "view", after), f"document {after!r}")):
            raise UnknownDocumentError(f"after: projection {name} has no document {after!r}", projection=name, id=after)
    return [Document(id, data) for id, data in rows]


def count_steps(name: str, where: Mapping[str, Any] | None) -> Steps[int]:
    """:meth:`View.count` as steps, for both stores."""
    row = yield from _definition_row_steps(name)
    rows = yield from _rows_steps(name, count_query(queryable_table(name, row), where), "count")
    return int(rows[0][0])


class Pooled(Protocol):
    """What a view reads through: a store's connections (a :class:`jsproj.EventStore`): a replica's, where it
    has replicas (docs/replicas.md)."""

    def read_connection(self, min_lsn: str | None = None) -> AbstractContextManager[psycopg.Connection[Any]]: ...


class AsyncPooled(Protocol):
    """What an asyncio view reads through (a :class:`jsproj.AsyncEventStore`)."""

    def read_connection(
        self, min_lsn: str | None = None
    ) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]: ...


class View:
    """The documents of one deployed projection, read by id or queried by field.

    ``store.views(name)`` (or ``View(store, name)``); :meth:`find` returns a list of :class:`Document`.
    """

    def __init__(self, store: Pooled, name: str, *, min_lsn: str | None = None) -> None:
        self.store = store
        self.name = name
        self.min_lsn = min_lsn  # read from a replica that has replayed it (docs/replicas.md)

    def get(self, id: str) -> Any:
        """The document ``id``; an :class:`~jsproj.errors.UnknownDocumentError` when there is none.
        An aggregate's one document has the aggregate's name as id."""
        return self._run(get_steps(self.name, id))

    def find(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Document]:
        """The documents that match ``where`` (all of them when None), ordered by ``order_by`` (a dotted
        field, ``-field`` descending, or ``id``: the default), ties by id; at most ``limit`` of them, after the
        document ``after`` (the last id of the previous page: an UnknownDocumentError if it is gone)."""
        return self._run(find_steps(self.name, where, order_by, limit, after))

    def count(self, where: Mapping[str, Any] | None = None) -> int:
        """How many documents match ``where`` (all of them when None)."""
        return self._run(count_steps(self.name, where))

    def _run(self, work: Steps[T]) -> T:
        with self.store.read_connection(self.min_lsn) as conn:
            return run(conn, work)


class AsyncView:
    """:class:`View` for asyncio: ``await store.views(name).find(...)``."""

    def __init__(self, store: AsyncPooled, name: str, *, min_lsn: str | None = None) -> None:
        self.store = store
        self.name = name
        self.min_lsn = min_lsn

    async def get(self, id: str) -> Any:
        """The document ``id`` (see :meth:`View.get`)."""
        return await self._run(get_steps(self.name, id))

    async def find(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Document]:
        """The documents that match ``where`` (see :meth:`View.find`)."""
        return await self._run(find_steps(self.name, where, order_by, limit, after))

    async def count(self, where: Mapping[str, Any] | None = None) -> int:
        """How many documents match ``where``."""
        return await self._run(count_steps(self.name, where))

    async def _run(self, work: Steps[T]) -> T:
        async with self.store.read_connection(self.min_lsn) as conn:
            return await run_async(conn, work)


def fetch_view(
    store: Pooled, name: str, id: str | None = None, *, limit: int | None = None, after: str | None = None
) -> Any:
    """One document of projection ``name`` (``id`` given), or ``{id: document}`` for a page of them.

    Pages are in id order: ``limit`` documents after the id ``after``.
    An aggregate's one document has its name as id.
    """
    view = View(store, name)
    if id is not None:
        return view.get(id)
    with store.read_connection() as conn:
        kind, _ = run(conn, _definition_steps(name))
    if kind != "aggregate":
        return dict(view.find(limit=limit, after=after))
    if (after is not None and name <= after) or limit == 0:
        return {}
    try:
        return {name: view.get(name)}
    except UnknownDocumentError:
        return {}


def export_views(store: Pooled) -> dict[str, dict[str, Any]]:
    """Every stored document, in the simulation's shape: ``{"views": {name: {id: doc}}, "aggregates": {name: doc}}``."""
    exported: dict[str, dict[str, Any]] = {"views": {}, "aggregates": {}}
    with store.read_connection() as conn:
        try:
            names = conn.execute(
                "select name, kind from pge_projection_definitions where lifecycle <> 'live' order by name"
            ).fetchall()
        except psycopg.Error as exc:
            raise translate(exc, "export") from exc
    for name, kind in names:
        if kind == "aggregate":
            exported["aggregates"][name] = fetch_view(store, name).get(name)
        else:
            exported["views"][name] = fetch_view(store, name)
    return exported
