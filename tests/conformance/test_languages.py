"""PLV8 and PL/JS as hosts: locked down, limited, and run with least privilege (real PostgreSQL, real languages).

The conformance suite runs every case in both (test_conformance.py); here
is what is particular to a JavaScript procedural language: the language's
own object (``plv8``/``pljs``: any SQL, as the role) must be out of reach of
projection code by every route, a loop must be stopped by PostgreSQL's
statement_timeout with the projection named, the engine must be unusable
from projection code, and an application role granted only ``pge_append``
and the views must be able to append and read, and nothing more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import psycopg
import pytest

from jsproj.projections.deploy import deploy
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore

from conformance_hosts import LANGUAGES, require_language

pytestmark = pytest.mark.slow  # PLV8 and PL/JS in backends of their own (the Python engine's are in make test-fast)


@pytest.fixture(params=LANGUAGES)
def language(request: pytest.FixtureRequest, cluster) -> str:
    require_language(cluster.dsn, request.param)
    return str(request.param)


def append(session: psycopg.Connection, stream: str, event_type: str) -> None:
    message = {"id": stream, "type": "T", "data": {"$type": event_type}}
    session.execute("select pge_append(%s::jsonb)", (json.dumps(message),))


# Every route from projection code to the language's object, at load time and in a handler;
# each found object is used to run SQL (a table that must never appear).
ESCAPE = r"""
var names = ['plv8', 'pljs'];
function look(where, root) {
  var found = [];
  names.forEach(function (name) {
    try {
      var object = root && root[name];
      if (object && typeof object.execute === 'function') {
        object.execute('create table escaped_' + where + ' (x int)');
        found.push(where + ':' + name);
      }
    } catch (e) { /* refused */ }
  });
  return found;
}
function routes(when) {
  var found = [];
  var sloppyThis = (function () { return this; })();
  found = found.concat(look(when + '_this', sloppyThis));
  found = found.concat(look(when + '_global', typeof globalThis === 'undefined' ? undefined : globalThis));
  try { found = found.concat(look(when + '_function', Function('return this')())); } catch (e) { /* refused */ }
  try { found = found.concat(look(when + '_eval', (0, eval)('this'))); } catch (e) { /* refused */ }
  try {
    var ctor = Object.getPrototypeOf(function* () {}).constructor;
    found = found.concat(look(when + '_generator', ctor('yield this')().next().value));
  } catch (e) { /* refused */ }
  try { if (typeof plv8 !== 'undefined' || typeof pljs !== 'undefined') found.push(when + ':by-name'); } catch (e) { /* none */ }
  try { if (typeof pge_engine_run === 'function') pge_engine_run('x', 'apply', '{}'); } catch (e) { /* refused */ }
  // The engines' global, with SQL in the schema argument (found by an adversarial review: it ran).
  var self = (function () { return this; })();
  var engines = (self && self.__jsprojEngines) || (typeof __jsprojEngines === 'function' ? __jsprojEngines : undefined);
  if (typeof engines === 'function') {
    var injected = '(select 1 as generation) s; create table escaped_' + when + '_injected (x int); select 1 as generation --';
    ['route', 'describe', 'current'].forEach(function (op) {
      try { engines('', injected, op, '{}'); } catch (e) { /* refused */ }
      try { engines('0123456789abcdef0123456789abcdef', '"public"', op, '{}'); } catch (e) { /* refused */ }
    });
    try { found.push(when + ':engine=' + String(engines('', '"public"', 'describe', '')).slice(0, 40)); } catch (e) { /* refused */ }
  }
  return found;
}
var atLoad = routes('load');
projections.aggregate('Escape').by({
  Try: function (state) {
    state.atLoad = atLoad;
    state.inHandler = routes('handler');
    var engine = typeof pge_engine_run === 'function' ? pge_engine_run('guess', 'describe', '') : 'unreachable';
    state.engine = String(engine).slice(0, 80);
    // A getter on the returned state runs when the engine writes the document.
    Object.defineProperty(state, 'late', { enumerable: true, get: function () { return routes('getter').length; } });
  }
});
"""


def test_projection_code_never_reaches_the_language_object_or_the_engine(dsn: str, language: str) -> None:
    with EventStore(dsn, max_size=1) as store:
        deploy(store, [{"file": "Escape.js", "source": ESCAPE}], engine=language, lifecycles={"Escape": "inline"})
        store.append({"id": "e", "type": "T", "data": {"$type": "Try"}})
        state = fetch_view(store, "Escape")["Escape"]
    refused = '{"error":{"kind":"SandboxError","message'
    for when, found in (("load", state["atLoad"]), ("handler", state["inHandler"])):
        assert found in ([], [f"{when}:engine={refused}"]), found  # PL/JS names the global; calls are refused
    assert state["late"] in (0, 1)
    assert "refused" in state["engine"] or state["engine"] == "unreachable", state["engine"]
    with psycopg.connect(dsn) as conn:
        escaped = conn.execute("select relname from pg_class where relname like 'escaped%'").fetchall()
    assert escaped == [], "projection code ran SQL"


SPIN_IN_HANDLER = (
    "projections.aggregate('Spinner').by({ Spin: function () { while (true) {} }, Go: function (s) { s.n = 1; } });"
)
SPIN_AT_LOAD = "while (true) {}\nprojections.aggregate('Spinner').by({ Go: function (s) { s.n = 1; } });"


def test_a_looping_handler_is_stopped_by_statement_timeout_with_the_projection_named(dsn: str, language: str) -> None:
    with EventStore(dsn, max_size=1) as store:
        deploy(store, [{"file": "Spinner.js", "source": SPIN_IN_HANDLER}], engine=language)
    with psycopg.connect(dsn, autocommit=True) as session:
        session.execute("set statement_timeout = '1s'")
        with pytest.raises(psycopg.errors.QueryCanceled) as caught:
            append(session, "s", "Spin")
        assert caught.value.diag.message_primary == "projection Spinner was stopped by statement_timeout or a cancel"
        assert json.loads(caught.value.diag.message_detail or "{}")["kind"] == "SandboxTimeoutError"
        append(session, "s", "Go")  # the same connection goes on
        assert session.execute("select data from pge_aggregates where name = 'Spinner'").fetchone() == ({"n": 1},)
        assert session.execute("select count(*) from pge_events").fetchone() == (1,), "the stopped append rolled back"


def engine_token(session: psycopg.Connection, schema: str = "public") -> str:
    """A deployment's token, as any role reads it in pg_proc (a projection's author can write it in a file)."""
    (source,) = session.execute(
        "select prosrc from pg_proc where oid = to_regprocedure(%s)", (f"{schema}.pge_engine_call(text, text)",)
    ).fetchone()
    match = re.search(r"pge_engine_run\('([0-9a-f]{32})'", source)
    assert match, "no token in pge_engine_call"
    return match.group(1)


def spin_payload(session: psycopg.Connection) -> str:
    """An apply of a Spin event to Spinner, as pge_apply_records builds it."""
    (event,) = session.execute(
        "select pge_event_record(1, 's', 'T', 1, now(), null, 'Spin', gen_random_uuid(), '{}')"
    ).fetchone()
    (documents,) = session.execute("""select pge_load_documents('{"Spinner": ["Spinner"]}')::text""").fetchone()
    return '{"events":[' + event + '],"documents":' + documents + ',"options":{"projections":["Spinner"]}}'


def test_a_call_stopped_where_nothing_asks_what_ran_does_not_leave_the_engine_refusing(dsn: str, language: str) -> None:
    """A stopped call never runs its ``finally``; what ends it is the (sub)transaction the stop ended, not a
    second call that a second cancel could stop as well (CI once saw every later call refused)."""
    with EventStore(dsn, max_size=1) as store:
        deploy(store, [{"file": "Spinner.js", "source": SPIN_IN_HANDLER}], engine=language)
    with psycopg.connect(dsn, autocommit=True) as session:
        token, payload = engine_token(session), spin_payload(session)
        session.execute("set statement_timeout = '300ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):  # the engine itself: no handler asks what ran
            session.execute("select pge_engine_run(%s, 'apply', %s)", (token, payload))
        session.execute("set statement_timeout = 0")
        append(session, "s", "Go")
        assert session.execute("select data from pge_aggregates where name = 'Spinner'").fetchone() == ({"n": 1},)


def test_a_handler_stopped_in_a_batch_names_its_message(dsn: str, language: str) -> None:
    with EventStore(dsn, max_size=1) as store:
        deploy(store, [{"file": "Spinner.js", "source": SPIN_IN_HANDLER}], engine=language)
    batch = [{"id": "s", "type": "T", "data": {"$type": "Go"}}, {"id": "s", "data": {"$type": "Spin"}}]
    with psycopg.connect(dsn, autocommit=True) as session:
        session.execute("set statement_timeout = '1s'")
        with pytest.raises(psycopg.errors.QueryCanceled) as caught:  # a cancel stays a cancel
            session.execute("select pge_append(%s::jsonb)", (json.dumps(batch),))
        said = caught.value.diag
        assert said.message_primary == "message 2: projection Spinner was stopped by statement_timeout or a cancel"
        assert json.loads(said.message_detail or "{}")["messageNumber"] == 2
        assert session.execute("select count(*) from pge_events").fetchone() == (0,)


def test_a_file_that_loops_while_it_loads_is_stopped_and_the_connection_goes_on(dsn: str, language: str) -> None:
    with EventStore(dsn, max_size=1) as store:
        deploy(store, [{"file": "Spinner.js", "source": SPIN_IN_HANDLER}], engine=language)
    with psycopg.connect(dsn, autocommit=True) as owner:  # its owner changes it behind jsproj check's back
        append(owner, "s", "Go")  # the context started (its start counts in the limit): the file's load alone below
        owner.execute("update pge_projection_definitions set source = %s", (SPIN_AT_LOAD,))
        owner.execute("select pge_set_engine_settings(0.3, 256, python_path) from pge_engine")  # a new generation
        for _ in range(2):  # the second answers from the first, without running the file again
            with pytest.raises(psycopg.Error) as caught:
                append(owner, "s", "Go")
            assert caught.value.sqlstate == "JP500"
            assert caught.value.diag.message_primary == "projection file Spinner.js ran past the time limit of 0.3 s"
        owner.execute("update pge_projection_definitions set source = %s", (SPIN_IN_HANDLER,))  # mended
        owner.execute("update pge_engine set generation = generation + 1")
        append(owner, "s", "Go")  # the same connection appends again
        assert owner.execute("select data from pge_aggregates where name = 'Spinner'").fetchone() == ({"n": 1},)


HOARD = """
projections.aggregate('Hoarder').by({
  Hoard: function (s) { var all = []; for (;;) all.push(new Array(1000000).fill(all.length)); },
  Go: function (s) { s.n = 1; }
});"""


def test_a_handler_past_the_memory_limit_fails_its_append_naming_it_and_the_server_survives(
    dsn: str, language: str
) -> None:
    """The connection goes on; PLV8's isolate died, and the next statement gets a new one (calling it
    again in the same statement, to ask what was running, crashed the server: the engine does not)."""
    with EventStore(dsn, max_size=1) as store:
        deploy(store, [{"file": "Hoarder.js", "source": HOARD}], engine=language)
    with psycopg.connect(dsn, autocommit=True) as session:
        session.execute("set statement_timeout = '60s'")  # a limit of last resort: memory must stop it first
        with pytest.raises(psycopg.Error, match=r"(?i)projection Hoarder.*memory") as caught:
            append(session, "s", "Hoard")
        assert caught.value.sqlstate != "57014", "stopped by the memory limit, not by the time limit"
        append(session, "s", "Go")
        assert session.execute("select data from pge_aggregates where name = 'Hoarder'").fetchone() == ({"n": 1},)


def test_the_languages_execute_binds_every_parameter_even_over_memory_full_of_n(dsn: str, language: str) -> None:
    """PL/JS 1.0.5 left execute's null flags as palloc had them: a parameter reached the query as NULL where
    the memory held an 'n' (deploy/pg-js/pljs-07-execute-parameter-nulls.patch). The engine binds its schema,
    token and mark so; a store failed with "SET requires parameter name" after a hoarding projection."""
    with psycopg.connect(dsn, autocommit=True) as session:
        session.execute(f"create extension if not exists {language}")
        session.execute(f"""create function nulls_seen() returns int language {language} as $$
            var seen = 0;
            for (var i = 0; i < 100; i++) {{
                {language}.execute("select repeat('n', 5000) as filler");
                var row = {language}.execute('select $1::text is null as a, $2::text is null as b', ['x', 'y'])[0];
                if (row.a || row.b) seen++;
            }}
            return seen;
        $$""")
        assert session.execute("select nulls_seen()").fetchone() == (0,)


def test_two_schemas_and_a_redeploy_share_one_backend(cluster, dsn: str, language: str) -> None:
    """One locked-down context serves every schema's engine, and a redeploy in the same session."""
    one = "projections.aggregate('Count').by({ Go: function (s) { s.n = (s.n || 0) + 1; } });"
    two = "projections.aggregate('Count').by({ Go: function (s) { s.n = (s.n || 0) + 10; } });"
    with EventStore(dsn, max_size=1) as a, EventStore(dsn, schema="other", max_size=1) as b:
        deploy(a, [{"file": "Count.js", "source": one}], engine=language)
        deploy(b, [{"file": "Count.js", "source": two}], engine=language)
        a.append({"id": "x", "type": "T", "data": {"$type": "Go"}})
        b.append({"id": "x", "type": "T", "data": {"$type": "Go"}})
        deploy(a, [{"file": "Count.js", "source": two}], engine=language)  # rebuilt: 10
        a.append({"id": "x", "type": "T", "data": {"$type": "Go"}})
        assert fetch_view(a, "Count") == {"Count": {"n": 20}}
        assert fetch_view(b, "Count") == {"Count": {"n": 10}}


STOPPED_WITH_A_CLOCK = """
projections.aggregate('Stuck').by({ Go: function (s) { s.at = Date.now(); for (;;) {} } });
"""
READS_THE_CLOCK = """
// While this file loads there is no event: a clock another store left running must not show through.
var atLoad = (function () { try { return new Date(0).constructor.now(); } catch (e) { return 'no clock'; } })();
var statics = typeof RegExp.$1;
projections.aggregate('Clock').by({
  Go: function (s) { s.atLoad = atLoad; s.now = Date.now(); s.viaConstructor = new Date(0).constructor.now(); s.statics = statics; }
});
"""


def test_a_store_never_sees_the_clock_another_store_left_after_a_cancel(dsn: str, language: str) -> None:
    """Two stores served by one connection share one JavaScript context: a call of one stopped halfway
    (its event's clock running) leaves nothing the other's code can read, at load time or in a handler."""
    with EventStore(dsn, schema="first", max_size=1) as a, EventStore(dsn, schema="second", max_size=1) as b:
        deploy(a, [{"file": "Stuck.js", "source": STOPPED_WITH_A_CLOCK}], engine=language)
        deploy(b, [{"file": "Clock.js", "source": READS_THE_CLOCK}], engine=language)
    with psycopg.connect(dsn, autocommit=True) as session:  # one backend, one context for both
        # The context started by a call with no handler to run (its start counts in the limit), then 0.3 s.
        session.execute("""select first.pge_append('{"id": "y", "type": "T", "data": {"$type": "Start"}}')""")
        session.execute("select first.pge_set_engine_settings(0.3, 256, python_path) from first.pge_engine")
        session.execute("select second.pge_set_engine_settings(0.3, 256, python_path) from second.pge_engine")
        with pytest.raises(psycopg.Error, match="projection Stuck ran past the time limit"):
            session.execute("""select first.pge_append('{"id": "x", "type": "T", "timestamp": "2001-02-03T04:05:06Z",
                                                          "data": {"$type": "Go"}}')""")
        session.execute("""select second.pge_append('{"id": "x", "type": "T", "timestamp": "2026-01-01T00:00:00Z",
                                                       "data": {"$type": "Go"}}')""")
        (clock,) = session.execute("select data from second.pge_aggregates where name = 'Clock'").fetchone()
    now = 1767225600000  # 2026-01-01T00:00:00Z: its own event's, never the other store's 2001
    assert clock == {"atLoad": "no clock", "now": now, "viaConstructor": now, "statics": "undefined"}


def test_a_context_where_other_javascript_left_globals_is_refused(dsn: str, language: str) -> None:
    with EventStore(dsn, max_size=1) as store:
        deploy(store, [{"file": "Spinner.js", "source": SPIN_IN_HANDLER}], engine=language)
    with psycopg.connect(dsn, autocommit=True) as session:
        session.execute(f"do $$ globalThis.keep = {language}; $$ language {language}")
        with pytest.raises(psycopg.Error, match=r"holds what other JavaScript left there \(globalThis.keep\)"):
            append(session, "s", "Go")
        assert session.execute("select count(*) from pge_events").fetchone() == (0,)


@pytest.mark.parametrize(
    "leftover",
    [
        "Array.prototype.keep = {language}",
        "Object.defineProperty(Object.prototype, 'sql', {{ get: function () {{ return {language}.execute; }} }})",
        "JSON.helper = {language}.execute.bind({language})",
        "Math.run = function (q) {{ return {language}.execute(q); }}",
    ],
)
def test_a_context_where_other_javascript_left_the_language_on_a_builtin_is_refused(
    dsn: str, language: str, leftover: str
) -> None:
    """The fresh-context check walks every built-in and prototype, not just the global names."""
    with EventStore(dsn, max_size=1) as store:
        deploy(store, [{"file": "Spinner.js", "source": SPIN_IN_HANDLER}], engine=language)
    with psycopg.connect(dsn, autocommit=True) as session:
        session.execute(f"do $$ {leftover.format(language=language)}; $$ language {language}")
        with pytest.raises(psycopg.Error, match=r"holds what other JavaScript left there \(globalThis\.\w+"):
            append(session, "s", "Go")
        assert session.execute("select count(*) from pge_events").fetchone() == (0,)


# -- least privilege: an owner that deploys without superuser rights, an application that only appends and reads --


@pytest.fixture
def roles(cluster, dsn: str) -> Iterator[tuple[str, str]]:
    """DSNs of two roles in the test's database: ``owner`` (no superuser) and ``app`` (nothing granted)."""
    database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(cluster.dsn, autocommit=True) as admin:
        for role in ("jsproj_owner", "jsproj_app"):
            admin.execute(f"drop role if exists {role}")
            admin.execute(f"create role {role} login")
        admin.execute(f"grant create on database {database} to jsproj_owner")
    with psycopg.connect(dsn, autocommit=True) as dba:  # what a DBA does once: the extensions
        dba.execute("create extension if not exists plv8")
        dba.execute("create extension if not exists pljs")
    yield dsn.replace("user=jsproj", "user=jsproj_owner"), dsn.replace("user=jsproj", "user=jsproj_app")
    with psycopg.connect(dsn, autocommit=True) as dba:
        dba.execute("drop schema if exists shop cascade")
    with psycopg.connect(cluster.dsn, autocommit=True) as admin:
        admin.execute(f"revoke create on database {database} from jsproj_owner")
        admin.execute("drop role jsproj_owner")
        admin.execute("drop role jsproj_app")


ORDERS = """
projections.aggregate('Sales').by({ Sold: function (s, e) { s.total = (s.total || 0) + e.amount; } });
projections.projectView('Orders').identifiedBy(function (e) { return e.order; })
  .by({ Sold: function (s, e) { s.amount = e.amount; } });
"""


def shop_for_the_application(roles: tuple[str, str], language: str, views: str) -> str:
    """Store ``shop`` with ORDERS deployed on ``language``, and the application role given the documented grants
    (docs/deploy.md#privileges): to append, and to read ``views``; the application's DSN."""
    owner_dsn, app_dsn = roles
    with EventStore(owner_dsn, schema="shop", max_size=1) as store:
        deploy(store, [{"file": "Orders.js", "source": ORDERS}], engine=language)
    with psycopg.connect(owner_dsn, autocommit=True) as owner:
        owner.execute("grant usage on schema shop to jsproj_app")
        owner.execute("grant execute on function shop.pge_append(jsonb) to jsproj_app")
        owner.execute(f"grant select on {views} to jsproj_app")
    return app_dsn


def test_an_application_role_can_append_and_read_views_and_nothing_else(roles: tuple[str, str], language: str) -> None:
    app_dsn = shop_for_the_application(roles, language, "shop.pge_projections_orders, shop.pge_aggregates")
    with psycopg.connect(app_dsn, autocommit=True) as app:
        app.execute("set search_path = shop")
        message = {"id": "o-1", "type": "Order", "data": {"$type": "Sold", "order": "o-1", "amount": 5}}
        assert app.execute("select pge_append(%s::jsonb)", (json.dumps(message),)).fetchone()[0]["version"] == 1
        assert app.execute("select data from pge_projections_orders").fetchall() == [({"amount": 5},)]
        assert app.execute("select data from pge_aggregates where name = 'Sales'").fetchone() == ({"total": 5},)
        refused = {
            "create a function": f"create function shop.f() returns int language {language} as 'return 1'",
            "read the events": "select * from pge_events",
            "read the definitions": "select source from pge_projection_definitions",
            "deploy": "select pge_deploy('[]', '', '')",
            "run the engine": "select pge_engine_call('describe', '')",
            "write a view": "delete from pge_projections_orders",
        }
        for what, statement in refused.items():
            with pytest.raises(psycopg.Error, match="permission denied") as caught, app.transaction():
                app.execute(statement)
            assert caught.value.sqlstate in ("42501", "XX000"), what  # PL/JS reports SQL errors as XX000


def test_an_application_role_setting_the_engines_call_mark_changes_nothing(
    roles: tuple[str, str], language: str
) -> None:
    """The mark that ends a stopped call (jsproj.engine_call, docs/sandbox.md) is a setting any session can set:
    set to anything, for the session or a transaction, appends go on, and the engine never runs a call twice."""
    app_dsn = shop_for_the_application(roles, language, "shop.pge_aggregates")
    with psycopg.connect(app_dsn, autocommit=True) as app:
        app.execute("set search_path = shop")
        values = ["", "0:1", "x:1", "1", "on", "'; select 1; --", "a" * 300]
        for n, value in enumerate(values, start=1):
            app.execute("select set_config('jsproj.engine_call', %s, false)", (value,))
            message = {"id": "o-1", "type": "Order", "data": {"$type": "Sold", "order": "o-1", "amount": 1}}
            with app.transaction():
                app.execute("select set_config('jsproj.engine_call', %s, true)", (value + "!",))
                app.execute("select pge_append(%s::jsonb)", (json.dumps(message),))
            assert app.execute("select data from pge_aggregates where name = 'Sales'").fetchone() == ({"total": n},)


def test_a_deploy_whose_first_engine_call_finds_its_function_late_is_not_refused(dsn: str, language: str) -> None:
    """PL/JS 1.0.5 once answered the engine's first check of its own pge_engine_call with no rows (a stream
    projection's file before an aggregate's, with the schema of issue 17): that deploy must go through. The
    cause was its execute binding a parameter as NULL (the pljs-07 patch; the test above)."""
    party = """projections.projectStream('Quest').named('Party').by({
      $init: function () { return { towns: 0 }; }, TownReached: function (state) { state.towns += 1; } });"""
    towns = """projections.aggregate('Towns').by({
      TownReached: function (state) { state.count = (state.count || 0) + 1; } });"""
    with EventStore(dsn) as store:
        deploy(store, [{"file": "a.js", "source": party}, {"file": "b.js", "source": towns}], engine=language)
        store.append(stream_id="q1", type="Quest", events=[{"$type": "TownReached"}])
        assert fetch_view(store, "Party", "q1") == {"towns": 1}
        assert fetch_view(store, "Towns", "Towns") == {"count": 1}
