"""Querying views by field (views.View) and the indexes projections declare, against a real PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from clihelp import jsproj
from jsproj import errors
from jsproj.config import project_file
from jsproj.follow.daemon import Daemon
from jsproj.projections import operations as control
from jsproj.projections.deploy import deploy
from jsproj.projections.views import Document, View, fetch_view, find_query
from jsproj.store.sync import EventStore

from blocking import BlockingAsyncStore
from waiting import wait_until

# One document per Joined event, keyed by its $id: the fields queries look at.
MEMBERS = """projections.projectEvent('Joined').named('Member').by(function (e) {
  var doc = { $id: e.who, location: e.location, party: { leader: e.leader } };
  if (e.size !== undefined) doc.size = e.size;
  return doc;
}){index};
projections.aggregate('Joins').by({ Joined: function (s) { s.n = (s.n || 0) + 1; } });
projections.projectStream('Quest').named('Journey').by({ Joined: function (s) { s.n = (s.n || 0) + 1; } }).live();
"""
PEOPLE = [  # who, location, leader, size (None: no size field)
    ("frodo", "Moria", "Gandalf", 9),
    ("sam", "Moria", "Gandalf", 9),
    ("merry", "Bree", "Strider", 4),
    ("pippin", "Bree", "Strider", 4),
    ("boromir", "Rivendell", "Elrond", 12),
    ("gimli", "Moria", "Balin", 2.5),
    ("bilbo", "Shire", "Frodo", None),
]


def members(index: str = "", lifecycle: str = "") -> list[dict[str, str]]:
    return [{"file": "Members.js", "source": MEMBERS.replace("{index}", index + lifecycle)}]


def join_all(store: EventStore, people: list[tuple[str, str, str, Any]] = PEOPLE) -> None:
    for who, location, leader, size in people:
        event: dict[str, Any] = {"$type": "Joined", "who": who, "location": location, "leader": leader}
        if size is not None:
            event["size"] = size
        store.append({"id": f"q-{who}", "type": "Quest", "data": event})


def ids(found: list[Document]) -> list[str]:
    return [doc.id for doc in found]


def indexes(dsn: str, table: str = "pge_projections_member") -> dict[str, str]:
    """Index name -> definition, of a table's indexes other than its primary key."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "select indexname, indexdef from pg_indexes where tablename = %s and indexname not like '%%pkey'", (table,)
        ).fetchall()
    return dict(found)


def plan(dsn: str, query: Any) -> str:
    with psycopg.connect(dsn) as conn:
        conn.execute("set enable_seqscan = off")
        return "\n".join(row[0] for row in conn.execute(psycopg.sql.SQL("explain ") + query.text, query.params))


# -- queries ------------------------------------------------------------------------


ViewOf = Callable[[str], Any]


@pytest.fixture(params=["sync", "asyncio"])
def view_of(request: pytest.FixtureRequest, dsn: str, store: EventStore) -> Iterator[ViewOf]:
    """The query tests run on both stores: ``view_of(name)`` is a View, or the asyncio store's AsyncView."""
    if request.param == "sync":
        yield lambda name: View(store, name)
        return
    with BlockingAsyncStore(dsn) as async_store:
        yield async_store.views


def test_containment_dotted_paths_and_comparisons(store: EventStore, view_of: ViewOf) -> None:
    deploy(store, members())
    join_all(store)
    view = view_of("Member")
    assert ids(view.find({"location": "Moria"})) == ["frodo", "gimli", "sam"]
    assert ids(view.find({"party.leader": "Strider"})) == ["merry", "pippin"]
    assert ids(view.find({"party": {"leader": "Balin"}})) == ["gimli"]  # an object value is contained
    assert ids(view.find({"location": "Moria", "party.leader": "Gandalf"})) == ["frodo", "sam"]
    assert ids(view.find({"size": 9})) == ["frodo", "sam"]
    assert ids(view.find({"size": {"$gt": 4}})) == ["boromir", "frodo", "sam"]
    assert ids(view.find({"size": {"$gte": 4, "$lt": 12}})) == ["frodo", "merry", "pippin", "sam"]
    assert ids(view.find({"size": {"$lte": 2.5}})) == ["gimli"]
    assert ids(view.find({"location": {"$gt": "Rivendell"}})) == ["bilbo"]  # strings compare with strings only
    assert ids(view.find({"size": {"$gt": "0"}})) == []  # no size is a string
    assert ids(view.find({"location": {"$in": ["Bree", "Shire"]}})) == ["bilbo", "merry", "pippin"]
    assert ids(view.find({"size": {"$ne": 9}})) == ["bilbo", "boromir", "gimli", "merry", "pippin"]  # missing too
    assert ids(view.find({"size": {"$eq": None}})) == ["bilbo"]  # a missing field counts as null
    assert ids(view.find({"size": None})) == []  # containment: the field must be there
    assert view.find({"who": "frodo"}) == []  # a field no document has
    assert view.count() == 7
    assert view.count({"location": "Moria"}) == 3
    assert view.get("frodo") == {"$id": "frodo", "location": "Moria", "party": {"leader": "Gandalf"}, "size": 9}
    assert view_of("Joins").get("Joins") == {"n": 7}
    with pytest.raises(errors.UnknownDocumentError):
        view.get("gollum")


def test_ordering_is_stable_with_ties_and_pages_follow_it(store: EventStore, view_of: ViewOf) -> None:
    deploy(store, members())
    join_all(store)
    view = view_of("Member")
    # numbers in numeric order (2.5 < 4 < 9 < 12), ties by id; a missing field (null) sorts first
    ascending = ["bilbo", "gimli", "merry", "pippin", "frodo", "sam", "boromir"]
    assert ids(view.find(order_by="size")) == ascending
    assert ids(view.find(order_by="-size")) == ascending[::-1]
    assert ids(view.find(order_by="party.leader")) == ["gimli", "boromir", "bilbo", "frodo", "sam", "merry", "pippin"]
    assert ids(view.find(order_by="-id", limit=2)) == ["sam", "pippin"]
    for order_by, expected in (("size", ascending), ("-size", ascending[::-1]), ("id", sorted(ascending))):
        pages, after = [], None
        while page := view.find(order_by=order_by, limit=2, after=after):
            pages.append(ids(page))
            after = page[-1].id
        assert [doc for page in pages for doc in page] == expected, order_by
        assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert ids(view.find({"location": "Moria"}, order_by="-size", limit=2)) == ["sam", "frodo"]
    assert view.find(limit=0) == []
    with pytest.raises(errors.UnknownDocumentError, match="after: projection Member has no document 'gollum'"):
        view.find(order_by="size", after="gollum")
    assert dict(view.find(order_by="size", limit=1)) == {"bilbo": view.get("bilbo")}
    assert fetch_view(store, "Member", limit=2, after="frodo") == dict(view.find(limit=2, after="frodo"))
    assert list(fetch_view(store, "Member", limit=2, after="frodo")) == ["gimli", "merry"]


@pytest.mark.parametrize(
    "where",
    [
        {"location'); drop table pge_events; --": "x"},
        {"a b": 1},
        {"1st": 1},
        {"party..leader": 1},
        {"": 1},
        {"party.": 1},
        {"$where": 1},
        {"x" * 201: 1},
    ],
)
def test_bad_fields_are_refused_naming_the_key(store: EventStore, view_of: ViewOf, where: dict[str, Any]) -> None:
    deploy(store, members())
    (key,) = where
    with pytest.raises(errors.InvalidFieldError) as raised:
        view_of("Member").find(where)
    assert raised.value.field == key
    assert isinstance(raised.value, errors.InputError)
    with pytest.raises(errors.InvalidFieldError):
        view_of("Member").find(order_by="-" + key)


def test_bad_queries_get_specific_errors_and_hostile_values_are_only_values(
    store: EventStore, view_of: ViewOf, dsn: str
) -> None:
    deploy(store, members())
    join_all(store)
    view = view_of("Member")
    hostile = "Moria'); drop table pge_events; --"
    assert view.find({"location": hostile}) == []
    assert view.find({"location": {"$in": [hostile, "Moria"]}, "size": {"$gt": hostile}}) == []
    join_all(store, [("smeagol", hostile, "\\'", None)])
    assert ids(view.find({"location": hostile, "party.leader": "\\'"})) == ["smeagol"]
    assert store.read_all(limit=100)  # the events table is there
    cases: list[tuple[Any, str]] = [
        ({"size": {"$gt": True}}, "takes a number or a string"),
        ({"size": {"$gt": None}}, "takes a number or a string"),
        ({"size": {"$gt": float("nan")}}, "finite"),
        ({"size": {"$regex": "."}}, "unknown operator '\\$regex'"),
        ({"size": {"$in": 3}}, "takes a list"),
        ({"size": float("inf")}, "not JSON"),
        ({"size": {1, 2}}, "not JSON"),
        ({"party": {"leader": "Gandalf"}, "party.leader": "Balin"}, "given twice"),
    ]
    for where, message in cases:
        with pytest.raises(errors.QueryError, match=message):
            view.find(where)
    with pytest.raises(errors.QueryError, match="limit"):
        view.find(limit=-1)
    with pytest.raises(errors.QueryError, match="Joins is an aggregate: it has one document"):
        view_of("Joins").find()
    with pytest.raises(errors.QueryError, match="aggregate"):
        view_of("Joins").count()
    with pytest.raises(errors.ProjectionError, match="live projection"):
        view_of("Journey").find()
    with pytest.raises(errors.UnknownProjectionError):
        view_of("Nope").find()


def test_queries_are_built_without_a_connection() -> None:
    query = find_query("pge_projections_member", {"location": "Moria", "size": {"$gt": 3}}, "-size", 10, "frodo")
    text = query.text.as_string(None)
    assert "Moria" not in text and "frodo" not in text  # values are parameters
    assert "coalesce(data #> '{size}'::text[], 'null'::jsonb) desc, id desc limit %s" in text
    assert query.params[-2:] == ("frodo", 10)


# -- declared indexes -------------------------------------------------------------------


def index_name(dsn: str, field: str, staging: bool = False) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select pge_index_name('Member', %s, %s)", (field, staging)).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("engine", ["python", "plpython"])
def test_declared_indexes_are_made_on_deploy_and_serve_queries(store: EventStore, dsn: str, engine: str) -> None:
    report = deploy(store, members(".index('location').index('size')"), engine=engine, indexes={"Member": ["size"]})
    assert report.indexes == {"Member": {"created": ["location", "size"], "dropped": []}}
    made = indexes(dsn)
    assert set(made) == {index_name(dsn, "location"), index_name(dsn, "size")}
    assert "COALESCE((data #> '{location}'::text[]), 'null'::jsonb), id" in made[index_name(dsn, "location")]
    join_all(store)
    with psycopg.connect(dsn) as conn:
        conn.execute("analyze pge_projections_member")
    for query in (
        find_query("pge_projections_member", order_by="-size", limit=3),
        find_query("pge_projections_member", {"location": "Moria"}, order_by="location"),
        find_query("pge_projections_member", {"size": {"$gte": 4}}, order_by="size", after="merry"),
    ):
        assert index_name(dsn, "location" if "location" in query.text.as_string(None) else "size") in plan(dsn, query)
    assert ids(View(store, "Member").find({"location": "Moria"}, order_by="-size")) == ["sam", "frodo", "gimli"]


def test_changing_only_indexes_rebuilds_nothing_and_leaves_other_indexes_alone(store: EventStore, dsn: str) -> None:
    deploy(store, members(".index('location')"), indexes={"Member": ["party.leader"]})
    join_all(store)
    with psycopg.connect(dsn) as conn:
        conn.execute("create index mine on pge_projections_member ((data ->> 'location'))")
        # named like jsproj's, but without its comment: a user's too
        conn.execute(f"create index {index_name(dsn, 'party')} on pge_projections_member ((data -> 'party'))")
        conn.commit()
        before = conn.execute("select id, updated_at from pge_projections_member order by id").fetchall()
    report = deploy(store, members(".index('location')"), indexes={"Member": ["size"]})  # jsproj.toml's changed
    assert (sorted(report.unchanged), report.rebuilt) == (["Joins", "Journey", "Member"], {})
    assert report.indexes == {"Member": {"created": ["size"], "dropped": ["party.leader"]}}
    assert set(indexes(dsn)) == {"mine", index_name(dsn, "party"), index_name(dsn, "location"), index_name(dsn, "size")}
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select id, updated_at from pge_projections_member order by id").fetchall() == before
        conn.execute(f"drop index {index_name(dsn, 'size')}")
        conn.commit()
    again = deploy(store, members(".index('location')"), indexes={"Member": ["size"]})
    assert again.indexes == {"Member": {"created": ["size"], "dropped": []}}
    assert deploy(store, members(".index('location')"), indexes={"Member": ["size"]}).indexes == {}
    assert deploy(store, members(".index('location')")).indexes == {"Member": {"created": [], "dropped": ["size"]}}
    assert set(indexes(dsn)) == {"mine", index_name(dsn, "party"), index_name(dsn, "location")}
    # .index() is in the projection's source: editing it is a change of the file, rebuilt like any other
    # (in its table, emptied and refilled: jsproj's index goes with the declaration, the user's stay)
    edited = deploy(store, members())
    assert "Member" in edited.changed and edited.rebuilt["Member"] == len(PEOPLE)
    assert set(indexes(dsn)) == {"mine", index_name(dsn, "party")}


@pytest.mark.parametrize("engine", ["python", "plpython"])
def test_indexes_stay_across_inline_rebuilds(store: EventStore, dsn: str, engine: str) -> None:
    deploy(store, members(".index('location')"), engine=engine)
    join_all(store)
    assert control.rebuild(store, "Member").events == len(PEOPLE)
    assert set(indexes(dsn)) == {index_name(dsn, "location")}
    changed = members(".index('location')").copy()
    changed[0] = {**changed[0], "source": changed[0]["source"] + "\n// changed: rebuilt from the log\n"}
    report = deploy(store, changed, engine=engine)
    assert "Member" in report.changed and report.rebuilt["Member"] == len(PEOPLE)
    assert set(indexes(dsn)) == {index_name(dsn, "location")}
    assert ids(View(store, "Member").find({"location": "Bree"})) == ["merry", "pippin"]


def test_indexes_stay_across_async_builds_by_the_daemon(store: EventStore, dsn: str) -> None:
    join_all(store)
    report = deploy(store, members(".index('location')", ".async()"))
    assert report.building == ["Member"]

    def built() -> bool:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("select status, events from pge_projection_progress where name = 'Member'").fetchone()
        return row == ("running", len(PEOPLE))

    worker = Daemon(dsn, poll_interval=0.05)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(built)
        assert set(indexes(dsn)) == {index_name(dsn, "location")}
        control.rebuild(store, "Member")  # followed: the daemon holding it builds and swaps again
        wait_until(built)
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert set(indexes(dsn)) == {index_name(dsn, "location")}
    assert indexes(dsn, "pge_build_member") == {}
    assert ids(View(store, "Member").find({"location": "Moria"}, order_by="size")) == ["gimli", "frodo", "sam"]


def test_a_builds_staging_table_gets_the_indexes_and_the_swap_renames_them(store: EventStore, dsn: str) -> None:
    deploy(store, members(".index('location')", ".async()"))
    with psycopg.connect(dsn) as conn:
        conn.execute("create table pge_build_member (like pge_projections_member)")
        staged = conn.execute("select pge_sync_indexes('Member', true)").fetchone()
        assert staged == ({"created": ["location"], "dropped": []},)
        assert set(indexes(dsn, "pge_build_member")) == set()  # not committed yet: another connection
        conn.execute("drop table pge_projections_member")
        conn.execute("alter table pge_build_member rename to pge_projections_member")
        adopted = conn.execute("select pge_adopt_indexes('Member')").fetchone()
        assert adopted == ({"created": [], "dropped": []},)  # renamed, not made again
        conn.commit()
    assert set(indexes(dsn)) == {index_name(dsn, "location")}


def test_indexes_on_aggregates_live_projections_or_bad_fields_are_refused(store: EventStore) -> None:
    with pytest.raises(errors.InputError, match="Joins is an aggregate"):
        deploy(store, members(), indexes={"Joins": ["n"]})
    with pytest.raises(errors.InputError, match="Journey is live"):
        deploy(store, members(), indexes={"Journey": ["n"]})
    with pytest.raises(errors.InvalidFieldError, match="Member: index: field 'a;b'"):
        deploy(store, members(), indexes={"Member": ["a;b"]})
    with pytest.raises(errors.UnknownProjectionError, match=r"\[jsproj.indexes\] names projections"):
        deploy(store, members(), indexes={"Nope": ["n"]})
    with pytest.raises(errors.ProjectionDefinitionError, match="an aggregate has one"):
        deploy(store, [{"file": "A.js", "source": "projections.aggregate('A').by({}).index('n');"}])


def test_jsproj_toml_declares_indexes(tmp_path: Path) -> None:
    (tmp_path / "jsproj.toml").write_text(
        '[jsproj]\nengine = "python"\n[jsproj.indexes]\nMember = ["location", "a.b"]\n'
    )
    found = project_file(tmp_path)
    assert (found.indexes, found.values) == ({"Member": ("location", "a.b")}, {"engine": "python"})
    for text, message in (
        ('[jsproj]\nindexes = "location"\n', "must be a table"),
        ('[jsproj.indexes]\nMember = "location"\n', "must be a list of field names"),
        ('[jsproj.indexes]\nMember = ["a b"]\n', "jsproj.indexes.Member: field 'a b'"),
    ):
        (tmp_path / "jsproj.toml").write_text(text)
        with pytest.raises(errors.InputError, match=message):
            project_file(tmp_path)


# -- the command line -----------------------------------------------------------------------


def test_jsproj_view_where_order_by_limit(store: EventStore, dsn: str, tmp_path: Path) -> None:
    (tmp_path / "projections").mkdir()
    (tmp_path / "projections" / "Members.js").write_text(members()[0]["source"])
    (tmp_path / "jsproj.toml").write_text('[jsproj]\n[jsproj.indexes]\nMember = ["location"]\n')
    deployed = jsproj("deploy", "--dsn", dsn, cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stderr
    assert "Member: indexes created: location" in deployed.stdout
    join_all(store)
    done = jsproj(
        "view", "Member", "--where", "location=Moria", "--where", 'size={"$gte": 3}', "--order-by", "-size",
        "--limit", "1", "--dsn", dsn, "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)) == ["sam"]
    numbers = jsproj("view", "Member", "--where", "size=4", "--dsn", dsn, "--json")
    assert list(json.loads(numbers.stdout)) == ["merry", "pippin"]
    text = jsproj("view", "Member", "--where", "size='4'", "--dsn", dsn, "--json")  # JSON? no: the string '4'
    assert json.loads(text.stdout) == {}
    table = jsproj("view", "Member", "--where", "party.leader=Strider", "--dsn", dsn)
    assert "merry" in table.stdout and "frodo" not in table.stdout
    bad = jsproj("view", "Member", "--where", "size;drop=1", "--dsn", dsn, "--json")
    assert bad.returncode != 0
    assert json.loads(bad.stdout)["error"]["kind"] == "InvalidFieldError"
    rendered = jsproj("view", "Member", "--order-by", "a b", "--dsn", dsn)
    assert rendered.returncode != 0 and "a b" in rendered.stderr
    usage = jsproj("view", "Member", "frodo", "--where", "size=4", "--dsn", dsn)
    assert usage.returncode == 2 and "DOCUMENT_ID" in usage.stderr
    helped = jsproj("view", "--help")
    assert "--where FIELD=VALUE" in helped.stdout and "--order-by FIELD" in helped.stdout


def test_the_views_doc_python_runs(store: EventStore) -> None:
    """docs/views.md's Python, against its own projection and the people above."""
    from test_docs import ROOT, blocks

    found = blocks(ROOT / "docs" / "views.md")
    projection = next(body for lang, _, body in found if lang == "js")
    deploy(store, [{"file": "Member.js", "source": projection}])
    join_all(store)
    code = [body for lang, _, body in found if lang == "python"]
    assert code
    for body in code:
        exec(compile(body, "views.md", "exec"), {"store": store})  # noqa: S102 -- the doc's own example
