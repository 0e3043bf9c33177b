"""The error table (js/errors.json) is the one source of jsproj's errors: Python's classes, the Node client's
classes and declarations, and the kinds the engine issues all match it, and Python and the Node client
translate every SQLSTATE (the table's, one of a known class, an unknown one, none) to the same error.
"""

from __future__ import annotations

import json
import re
import shutil
import string
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jsproj import errors
from jsproj.store.translate import translate
from jsproj.tools.postgres_cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ERRORS = ROOT / "js" / "client" / "errors.js"
NODE = shutil.which("node")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"a key is given twice: {keys}"
    return dict(pairs)


TABLE: dict[str, Any] = json.loads((ROOT / "js" / "errors.json").read_bytes(), object_pairs_hook=_no_duplicate_keys)
KINDS: dict[str, dict[str, Any]] = TABLE["kinds"]


def ancestors(kind: str) -> list[str]:
    """The kind's parents by the table, nearest first (JsprojError's: none)."""
    chain: list[str] = []
    while (parent := KINDS[kind]["parent"]) is not None:
        chain.append(parent)
        kind = parent
    return chain


def node(script: str, *args: str, stdin: str = "") -> Any:
    """What a Node script printed (as JSON), the script run with ``node -e``."""
    assert NODE, "node is not on the PATH"
    done = subprocess.run(
        [NODE, "-e", script, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- the table ------------------------------------------------------------------------


def test_the_table_is_one_tree_of_kinds_with_well_formed_sqlstates_and_rules() -> None:
    assert [kind for kind, entry in KINDS.items() if entry["parent"] is None] == ["JsprojError"]
    states: list[str] = []
    for kind, entry in KINDS.items():
        assert set(entry) <= {"parent", "doc", "sqlstates", "note"}, kind
        # upper case, as the scan of the engine below expects (a projection's kind, 'stream' or 'view', is not)
        assert re.fullmatch(r"[A-Z]\w*Error", kind), kind
        assert entry["parent"] is None or entry["parent"] in KINDS, kind
        assert len(ancestors(kind)) < len(KINDS), f"{kind}: its parents loop"
        assert entry["doc"].endswith(".") and "\n" not in entry["doc"], kind
        states += entry["sqlstates"]
        assert all(placeholders(template) <= {"message", "code"} for template in entry["sqlstates"].values()), kind
    assert all(re.fullmatch(r"[0-9A-Z]{5}", state) for state in states), states
    assert len(states) == len(set(states)), "a SQLSTATE is listed by two kinds"
    rules = [*TABLE["classes"].values(), TABLE["otherState"], TABLE["noState"]]
    assert all(re.fullmatch(r"[0-9A-Z]{2}", state_class) for state_class in TABLE["classes"])
    assert all(rule["kind"] in KINDS and placeholders(rule["message"]) <= {"message", "code"} for rule in rules)


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_the_table_ships_in_the_wheel_and_in_the_engines_npm_package_which_the_client_bundles() -> None:
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["force-include"]["js/errors.json"] == "jsproj/js/errors.json"  # beside jsproj/js/lib: bundle.lib_dir()
    assert "errors.json" in json.loads((ROOT / "js" / "package.json").read_text("utf-8"))["files"]
    client = json.loads((ROOT / "js" / "client" / "package.json").read_text("utf-8"))
    engine = json.loads((ROOT / "js" / "package.json").read_text("utf-8"))["name"]
    assert engine == "@jsproj/projections"
    assert client["dependencies"][engine] == "file:.." and engine in client["bundleDependencies"]
    assert f"require('{engine}/errors.json')" in CLIENT_ERRORS.read_text("utf-8")


# -- Python ---------------------------------------------------------------------------


def python_classes() -> dict[str, type[errors.JsprojError]]:
    found: dict[str, type[errors.JsprojError]] = {}
    todo: list[type[errors.JsprojError]] = [errors.JsprojError]
    while todo:
        cls = todo.pop()
        if cls.__module__ == errors.__name__:
            found[cls.__name__] = cls
        todo += cls.__subclasses__()
    return found


def test_every_python_class_is_a_kind_of_the_table_with_its_parent_sqlstates_and_doc() -> None:
    classes = python_classes()
    assert sorted(classes) == sorted(KINDS)
    for kind, cls in classes.items():
        entry = KINDS[kind]
        [base] = cls.__bases__
        assert (None if base is Exception else base.__name__) == entry["parent"], kind
        assert cls.kind == kind and dict(cls.sqlstates) == entry["sqlstates"], kind
        assert all(errors.for_sqlstate(state) is cls for state in entry["sqlstates"]), kind
        assert errors.from_info({"kind": kind, "message": "m"}).__class__ is cls
        docstring = " ".join((cls.__doc__ or "").replace("``", "").split())
        assert docstring.startswith(entry["doc"].removesuffix(".")), f"{kind}: the docstring opens otherwise"


# -- the Node client ------------------------------------------------------------------

CLASS_CHAINS = """
const errors = require(process.argv[1]);
const chains = {};
for (const [name, Class] of Object.entries(errors)) {
  if (typeof Class !== 'function' || !(Class.prototype instanceof Error)) continue;
  const chain = [];
  for (let P = Object.getPrototypeOf(Class); P !== Error; P = Object.getPrototypeOf(P)) chain.push(P.name);
  const made = new Class('m', { field: 1 });
  chains[name] = { name: Class.name, kind: made.kind, errorName: made.name, field: made.field, chain };
}
console.log(JSON.stringify(chains));
"""


def test_the_node_client_has_a_class_for_every_kind_under_its_parents() -> None:
    chains = node(CLASS_CHAINS, str(CLIENT_ERRORS))
    assert sorted(chains) == sorted(KINDS)
    for kind, made in chains.items():
        assert made == {"name": kind, "kind": kind, "errorName": kind, "field": 1, "chain": ancestors(kind)}


def test_the_node_clients_declarations_declare_every_kind_with_its_parent_and_doc() -> None:
    declared = (ROOT / "js" / "client" / "index.d.ts").read_text("utf-8")
    namespace = declared[declared.index("export declare namespace errors {") :]
    classes = re.findall(r"/\*\* (.*) \*/\n  class (\w+) extends (\w+) \{", namespace)
    assert len(classes) == len(re.findall(r"^  class ", namespace, re.M)), "a class without a doc comment"
    assert {name: (parent, doc) for doc, name, parent in classes} == {
        kind: (entry["parent"] or "Error", entry["doc"]) for kind, entry in KINDS.items()
    }


# -- the engine (js/lib) and the in-database hosts ---------------------------------------

#: How the engine and the hosts name a kind: fail('Kind', ...), failure('Kind', ...) (the in-database hosts),
#: {kind: 'Kind'}, a comparison with error.kind, and PL/pgSQL's v_kind := 'Kind'.
ISSUED = re.compile(
    r"\bfail(?:ure)?\(\s*'(\w+)'|\bkind\s*:\s*'(\w+)'|\.kind\s*[!=]==\s*'(\w+)'|\bv_kind\s*:=\s*'(\w+)'"
)
#: A kind chosen in an assignment (js/lib/errors.js: var kind = ... ? 'StackOverflowError' : 'InternalError').
CHOSEN = re.compile(r"\bkind\s*=(?!=)([^;]*);")
ISSUING = [*sorted((ROOT / "js" / "lib").glob("*.js")), *sorted((ROOT / "js").glob("*.js")),
           *sorted((ROOT / "js" / "bin").glob("*.js")), *sorted((ROOT / "sql" / "engines").glob("*.sql"))]  # fmt: skip


def issued_kinds(source: str) -> set[str]:
    named = {name for match in ISSUED.findall(source) for name in match if name}
    chosen = {name for statement in CHOSEN.findall(source) for name in re.findall(r"'(\w+)'", statement)}
    return {name for name in named | chosen if name[0].isupper()}  # not a projection's kind ('stream', 'view', ...)


def test_every_kind_the_engine_and_the_database_hosts_issue_is_in_the_table() -> None:
    issued = {path.relative_to(ROOT).as_posix(): issued_kinds(path.read_text("utf-8")) for path in ISSUING}
    unknown = {path: kinds - set(KINDS) for path, kinds in issued.items() if kinds - set(KINDS)}
    assert not unknown, f"kinds the table lacks (add them to js/errors.json): {unknown}"
    # the scan sees what it must: fail(), {kind: ...}, the chosen kind and PL/pgSQL's
    assert {"SandboxMemoryError", "StackOverflowError", "InternalError"} <= issued["js/lib/errors.js"]
    assert {"SandboxError", "InternalError", "EngineError"} <= issued["js/lib/host.js"]
    assert {"SandboxTimeoutError", "SandboxError"} <= issued["sql/engines/javascript.sql"]
    # js/lib names every kind it fails with in the call itself, where the scan reads it
    for path in sorted((ROOT / "js" / "lib").glob("*.js")):
        calls = re.findall(r"(?<!function )\bfail\(\s*([^\s)]*)", path.read_text("utf-8"))
        assert all(first.startswith("'") for first in calls), f"{path.name}: fail({calls})"


# -- translating: Python and the Node client ------------------------------------------------

DESCRIBED = '{"kind": "%s", "message": "projection P %s", "projection": "P", "position": 3}'
#: (SQLSTATE, DETAIL): every state of the table, states of a known class and of none, and jsproj's DETAILs.
CASES: list[tuple[str, str | None]] = [
    *[(state, None) for entry in KINDS.values() for state in entry["sqlstates"]],
    *[(state, None) for state in ("08006", "08001", "08P01", "22012", "42501", "P0001", "XX999", "XX000")],
    ("JP409", '{"streamId": "s", "expected": 1, "actual": 2}'),
    ("JP400", '{"messageNumber": 2, "detail": "Key (id)=(x) already exists."}'),
    ("JP412", '{"removed": ["Party"]}'),
    ("JP404", '{"kind": "ProjectionHandlerError", "message": "not this one", "projection": "P"}'),
    ("JP500", DESCRIBED % ("ProjectionHandlerError", "failed")),
    ("JP500", DESCRIBED % ("StackOverflowError", "recursed")),
    ("JP500", DESCRIBED % ("DocumentError", "made a bad document")),
    ("JP500", "not JSON"),
    ("57014", DESCRIBED % ("SandboxTimeoutError", "was stopped")),
    ("53200", DESCRIBED % ("SandboxMemoryError", "went past the memory limit")),
    ("XX000", DESCRIBED % ("SandboxError", "failed in the engine")),
    ("XX999", '{"kind": "InternalError", "message": "not an engine error"}'),
]
FAIL = """create function pg_temp.fail(p_state text, p_message text, p_detail text) returns void language plpgsql as $$
begin
    if p_detail is null then
        raise exception using errcode = p_state, message = p_message;
    end if;
    raise exception using errcode = p_state, message = p_message, detail = p_detail;
end $$"""
#: A message with what a template engine could take for its own ({...}, $&, $1).
MESSAGE = "it failed {message} {0} $& $1"

TRANSLATE = """
const errors = require(process.argv[1]);
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(cases.map((error) => {
  const made = errors.translate(error);
  const { name, kind, code, ...fields } = made;
  return { kind: made.kind, message: made.message, fields, isClass: made instanceof errors[made.kind] };
})));
"""


def raised(cluster: Cluster) -> list[psycopg.Error]:
    """The errors PostgreSQL raises for CASES."""
    found: list[psycopg.Error] = []
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(FAIL)
        for state, detail in CASES:
            with pytest.raises(psycopg.Error) as caught:
                conn.execute("select pg_temp.fail(%s, %s, %s)", (state, MESSAGE, detail))
            assert caught.value.sqlstate == state
            found.append(caught.value)
    return found


def in_python(error: psycopg.Error) -> dict[str, Any]:
    made = translate(error)
    fields = {key: value for key, value in made.info.items() if key not in ("kind", "message")}
    return {"kind": made.kind, "message": made.message, "fields": fields}


def as_pg_error(error: psycopg.Error) -> dict[str, Any]:
    """What the pg driver makes of the same error: its code, message and detail."""
    return {
        "code": error.sqlstate,
        "message": error.diag.message_primary or str(error),
        "detail": error.diag.message_detail,
    }


def test_python_and_the_node_client_translate_every_sqlstate_to_the_same_error(cluster: Cluster) -> None:
    errors_raised = raised(cluster)
    # without a SQLSTATE: a connection refused (class 08 in both), and any other error of the driver
    pairs = [(psycopg.OperationalError("connection refused"), {"code": "ECONNREFUSED", "message": "connection refused"}),
             (psycopg.InterfaceError("the connection is closed"), {"message": "the connection is closed"})]  # fmt: skip
    python = [in_python(error) for error in errors_raised] + [in_python(error) for error, _ in pairs]
    client = node(
        TRANSLATE, str(CLIENT_ERRORS), stdin=json.dumps([*map(as_pg_error, errors_raised), *(e for _, e in pairs)])
    )
    labels = [f"{state} {detail}" for state, detail in CASES] + ["ECONNREFUSED", "no SQLSTATE"]
    for label, mine, theirs in zip(labels, python, client, strict=True):
        assert theirs.pop("isClass"), f"{label}: not an instance of the client's class of its kind"
        # a batch's DETAIL: Python keeps its messageNumber, Node PostgreSQL's own detail too
        if mine["kind"] == "InvalidEventError":
            theirs["fields"].pop("detail", None)
        assert theirs == mine, label
    by_label = dict(zip(labels, python, strict=True))
    assert by_label["08006 None"]["kind"] == by_label["ECONNREFUSED"]["kind"] == "StoreUnavailableError"
    assert by_label["42P01 None"]["kind"] == "SchemaMissingError"
    unknown = by_label["XX999 None"]
    assert (unknown["kind"], unknown["message"]) == ("StoreError", f"PostgreSQL error XX999: {MESSAGE}")
    assert by_label["no SQLSTATE"]["message"] == "PostgreSQL error: the connection is closed"
    assert by_label[f"JP500 {DESCRIBED % ('StackOverflowError', 'recursed')}"]["kind"] == "StackOverflowError"
