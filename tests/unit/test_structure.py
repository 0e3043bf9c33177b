"""The package's shape: no import cycles between jsproj's modules (lazy imports inside functions included), one SQL definition per function."""

from __future__ import annotations

import ast
import functools
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "jsproj"
SQL = Path(__file__).resolve().parents[2] / "sql"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The jsproj modules ``path`` imports, anywhere in it (``from jsproj import x`` counts x when it is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} & modules
            found |= {f"{node.module}.{alias.name}" for alias in node.names} & modules
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    packages = {name for name, path in paths.items() if path.name == "__init__.py"}
    # A module importing `jsproj.x` runs `jsproj/__init__.py` first, but that edge is not a cycle of theirs.
    return {name: imports(path, modules) - packages - {name} for name, path in paths.items()}


def cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    path: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                found = visit(nxt)
                if found:
                    return found
        on_path.discard(path.pop())
        done.add(node)
        return None

    return visit(start)


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 20 and "jsproj.follow.daemon.progress" in graph["jsproj.projections.status"], (
        "the graph was read"
    )
    cycles = [cycle for name in sorted(graph) if (cycle := cycle_from(name, graph))]
    assert cycles == [], " ; ".join(" -> ".join(cycle) for cycle in cycles[:5])


CREATE_FUNCTION = re.compile(r"^\s*create\s+(?:or\s+replace\s+)?function\s+(?:@schema@\.)?(pge_\w+)\s*\(", re.I | re.M)
#: The engine interface: what each file of sql/engines implements for its engines, and no other file defines.
ENGINE_INTERFACE = {"plpython.sql": {"pge_engine_call"}, "javascript.sql": {"pge_engine_call", "pge_engine_run"}}


def test_each_sql_function_is_defined_in_exactly_one_file() -> None:
    """Each pge_* function is created in exactly one .sql file of sql/migrations and sql/functions.

    (Its overloads, as the spike API's uuid ones, live in that same file.)
    Migrations hold schema changes only and create no function. The engine
    interface is the exception: pge_engine_call (and, for the JavaScript
    languages, pge_engine_run) is defined once in each engine file that
    implements it, sql/engines/plpython.sql and sql/engines/javascript.sql
    (plv8.sql and pljs.sql only create their extension), and nowhere else.
    """
    files: dict[str, set[str]] = defaultdict(set)
    for path in sorted((SQL / "migrations").glob("*.sql")) + sorted((SQL / "functions").glob("*.sql")):
        for name in CREATE_FUNCTION.findall(path.read_text("utf-8")):
            files[name].add(f"{path.parent.name}/{path.name}")
    assert len(files) >= 20 and "pge_records" in files, "the functions were found"
    twice = {name: sorted(where) for name, where in files.items() if len(where) != 1}
    assert twice == {}, "defined in more than one file"
    in_migrations = sorted(name for name, where in files.items() if any(w.startswith("migrations/") for w in where))
    assert in_migrations == [], "migrations create no functions (sql/functions does)"
    interface = set().union(*ENGINE_INTERFACE.values())
    assert interface.isdisjoint(files), "the engine interface is defined only by the engine files"
    for path in sorted((SQL / "engines").glob("*.sql")):
        found = CREATE_FUNCTION.findall(path.read_text("utf-8"))
        expected = ENGINE_INTERFACE.get(path.name, set())
        assert sorted(found) == sorted(expected), path.name


MAX_LINES = 80


def long_functions(source: str) -> list[tuple[str, int]]:
    """The functions (and methods) of ``source`` longer than MAX_LINES lines, with their lengths."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_LINES
    ]


def test_the_length_check_finds_a_long_function() -> None:
    body = "\n".join(f"    x{n} = {n}" for n in range(MAX_LINES))
    assert long_functions(f"def short():\n    pass\n\ndef long():\n{body}\n") == [("long", MAX_LINES + 1)]


def test_no_function_of_the_package_is_longer_than_80_lines() -> None:
    """Complexity has its ceiling in ruff (C901, 12); length has it here."""
    found = {
        f"{module_name(path)}.{name}": lines
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, lines in long_functions(path.read_text("utf-8"))
    }
    assert found == {}, f"functions over {MAX_LINES} lines: {found}"


def test_the_package_is_typed() -> None:
    """``py.typed`` ships in the package, so that applications' type checkers read jsproj's annotations."""
    assert (PACKAGE / "py.typed").is_file()


ROOT = PACKAGE.parents[1]


def named_paths(markdown: str) -> set[str]:
    """The repository paths a document names in backticks (``src/...``, ``js/...``, ``sql/...``)."""
    return {
        match.group(1).rstrip("/") for match in re.finditer(r"`((?:src|js|sql|tests|bench|docs)/[^`\s]*)`", markdown)
    }


def test_every_module_the_architecture_names_exists() -> None:
    named = named_paths((ROOT / "docs" / "architecture.md").read_text("utf-8"))
    assert len(named) > 40, "the map was read"
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def test_the_architecture_names_every_module_of_the_package() -> None:
    """A new module gets a line on the map."""
    named = named_paths((ROOT / "docs" / "architecture.md").read_text("utf-8"))
    modules = {
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "examples" not in path.parts
    }
    assert sorted(modules - named) == []


def test_the_version_has_one_source() -> None:
    """js/package.json holds the version; the Python package reads it (hatch), the client follows it."""
    import json
    from importlib.metadata import version

    import jsproj

    engine = json.loads((ROOT / "js" / "package.json").read_text("utf-8"))["version"]
    client = json.loads((ROOT / "js" / "client" / "package.json").read_text("utf-8"))["version"]
    assert jsproj.__version__ == version("jsproj") == engine == client
    assert "version =" not in (ROOT / "pyproject.toml").read_text("utf-8").split("[project]")[1].split("[")[0]


def occurrences(root: Path, pattern: str, text: str) -> dict[str, int]:
    """How often ``text`` occurs in each file under ``root`` matching ``pattern`` (the files where it does)."""
    found = {str(path.relative_to(ROOT)): path.read_text("utf-8").count(text) for path in sorted(root.rglob(pattern))}
    return {path: count for path, count in found.items() if count}


def test_the_gap_safe_condition_is_said_once_in_python_and_once_in_sql() -> None:
    """Every reader of the whole log goes through the one log reader: `tx_id < pg_snapshot_xmin(...)` is
    written once in the package (store/log.py's `after`) and once in the SQL (`pge_log_end`)."""
    assert occurrences(PACKAGE, "*.py", "pg_snapshot_xmin(") == {"src/jsproj/store/log.py": 1}
    assert occurrences(SQL, "*.sql", "pg_snapshot_xmin(") == {"sql/functions/records.sql": 1}


def test_the_log_reader_alone_builds_record_lines_json_record_pages_and_the_high_water_mark() -> None:
    assert occurrences(PACKAGE, "*.py", "concat_ws(E'") == {"src/jsproj/store/log.py": 1}, "record lines"
    pages = {
        **occurrences(PACKAGE, "*.py", "string_agg(r.record"),
        **occurrences(PACKAGE, "*.py", "string_agg(page.record"),
    }
    assert pages == {"src/jsproj/store/log.py": 1}, "JSON record pages"
    high_water = "order by e.tx_id desc, e.position desc"
    assert occurrences(PACKAGE, "*.py", high_water) == {"src/jsproj/store/log.py": 1}
    assert occurrences(SQL / "functions", "*.sql", high_water) == {"sql/functions/records.sql": 1}
    # In SQL: the in-database rebuild reads pages after a position, the Python engine's append the events at
    # positions; the inline trigger builds its records from the statement's transition table (inline.sql says why).
    assert occurrences(SQL, "*.sql", "string_agg(page.record") == {"sql/functions/rebuild.sql": 1}
    assert occurrences(SQL, "*.sql", "string_agg(r.record") == {"sql/functions/inline.sql": 1}


@functools.cache
def raw_imports() -> dict[str, set[str]]:
    """Each module's jsproj imports, packages included, and whether it imports psycopg (as "psycopg")."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        found = imports(path, set(paths) | {"psycopg"})
        tree = ast.parse(path.read_text("utf-8"))
        if any(
            (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "psycopg" for a in node.names))
            or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "psycopg")
            for node in ast.walk(tree)
        ):
            found.add("psycopg")
        graph[name] = found
    return graph


def breaking(rule: str, modules: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    """The imports of modules under ``modules`` that a layer rule forbids (by prefix), with the rule's name."""
    graph = raw_imports()
    return sorted(
        f"{rule}: {name} imports {target}"
        for name, targets in graph.items()
        if name == modules or name.startswith(modules + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden) and target not in allowed
    )


#: (jsproj.store.readers: the synchronous store's reading half)
FACADES = ("jsproj.store.sync", "jsproj.store.readers", "jsproj.store.aio", "jsproj.store.connecting")


def test_the_layers_import_only_downwards() -> None:
    """engine < store < projections, follow < tools; the daemon reads through the store's parts, never its
    facades; the CLI parses and renders, and leaves the database to the library."""
    assert "jsproj.store.log" in raw_imports()["jsproj.follow.subscriber"], "the graph was read"
    found = [
        *breaking("the engine touches no database", "jsproj.engine",
                  ("jsproj.store", "jsproj.projections", "jsproj.follow", "jsproj.tools", "psycopg")),
        *breaking("the daemon never imports the store's facades", "jsproj.follow.daemon", FACADES),
        *breaking("the follower engine knows no processor", "jsproj.follow.engine",
                  ("jsproj.follow.daemon", "jsproj.follow.subscriber", "jsproj.follow.subscriptions", "jsproj.store")),
        *breaking("the CLI never imports psycopg", "jsproj.tools.cli", ("psycopg",)),
        *breaking("the store's parts import nothing above them", "jsproj.store",
                  ("jsproj.projections", "jsproj.follow", "jsproj.tools"), allowed=()),
    ]  # fmt: skip
    facades_above = [line for line in found if line.split(": ")[1].split(" imports ")[0] in FACADES]
    assert [line for line in found if line not in facades_above] == []
    # The facades give `views()` (projections.views) and open the embedded database (through config): nothing else.
    assert sorted({line.split(" imports ")[1] for line in facades_above}) <= ["jsproj.projections.views"]


MAX_CLASS_LINES = 250


def test_no_class_of_the_package_is_longer_than_250_lines() -> None:
    found = {
        f"{module_name(path)}.{node.name}": node.end_lineno - node.lineno + 1
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.ClassDef) and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
    }  # fmt: skip
    assert found == {}, f"classes over {MAX_CLASS_LINES} lines: {found}"


# `name` (`path`), or `a`, `b` and `c` (`path`): names the map says a file defines.
CLAIM = re.compile(r"((?:`[\w.]+`(?:,\s*|\s+and\s+))*`[\w.]+`)\s+\(`((?:src|sql|js)/[^`]+\.(?:py|sql|js))`\)")


def defines(path: Path, name: str) -> bool:
    text = path.read_text("utf-8")
    if path.suffix == ".sql":
        return re.search(rf"function\s+(?:@schema@\.)?{re.escape(name)}\s*\(", text, re.I) is not None
    if path.suffix == ".py":
        return re.search(rf"^\s*(?:def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]", text, re.M) is not None
    return re.search(rf"function\s+{re.escape(name)}\s*\(|\b{re.escape(name)}\s*=", text) is not None


def map_claims() -> list[tuple[str, str]]:
    invariants = (ROOT / "docs" / "architecture.md").read_text("utf-8").split("## Where each invariant is enforced")[1]
    return [
        (name.split(".")[-1], path)
        for names, path in CLAIM.findall(invariants)
        for name in re.findall(r"`([\w.]+)`", names)
    ]


def test_each_function_and_constant_an_invariant_names_is_defined_in_the_file_it_names() -> None:
    claims = map_claims()
    assert len(claims) >= 20 and ("pge_log_end", "sql/functions/records.sql") in claims, "the claims were read"
    assert [(name, path) for name, path in claims if not defines(ROOT / path, name)] == []


def test_the_claim_check_finds_a_wrong_claim(tmp_path: Path) -> None:
    wrong = tmp_path / "x.sql"
    wrong.write_text("create or replace function pge_other() returns int language sql as $$ select 1 $$;")
    assert not defines(wrong, "pge_log_end") and defines(wrong, "pge_other")


KEPT_PATHS = {
    "jsproj.views": "jsproj.projections.views",
    "jsproj.status": "jsproj.projections.status",
    "jsproj.subscriptions": "jsproj.follow.subscriptions",
    "jsproj.dashboard": "jsproj.tools.dashboard",
    "jsproj.control": "jsproj.projections.operations",
}


def test_the_import_paths_the_docs_used_before_the_regrouping_still_import_the_same_objects() -> None:
    import importlib

    for old, new in KEPT_PATHS.items():
        kept, moved = importlib.import_module(old), importlib.import_module(new)
        assert kept.__all__, old
        assert [name for name in kept.__all__ if getattr(kept, name) is not getattr(moved, name, None)] == [], old


def test_the_followers_guard_no_optional_connection_with_an_assert() -> None:
    """A follower's connections live in the part that is made with them (its session, its round), never in
    attributes that may be None and are asserted before each use (a connection opened on demand, as the
    metrics' lag reader's, is checked and opened where it is used)."""
    follow = PACKAGE / "follow"
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(follow.rglob("*.py"))
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if re.search(r"assert self\.\w+(?:\.\w+)* is not None", line)
    ]
    assert found == []


def test_every_name_jsproj_exports_is_what_it_names_once_every_module_is_imported() -> None:
    """No module of the package shares a name with what ``import jsproj`` exports: importing ``jsproj.deploy``
    (the module, before the package was grouped by concern) made ``jsproj.deploy`` the module, not the function."""
    import importlib
    import inspect

    import jsproj

    for name in sorted(graph_modules := set(import_graph())):
        if name.startswith("jsproj.") and ".examples" not in name:
            importlib.import_module(name)
    assert len(graph_modules) > 50, "every module was imported"
    modules = sorted(name for name in jsproj.__all__ if inspect.ismodule(getattr(jsproj, name)))
    assert modules == [], "these exports are shadowed by a module of the same name"
