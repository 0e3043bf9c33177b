"""The package's shape: no import cycles between jsproj's modules (lazy imports inside functions included), one SQL definition per function."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "jsproj"
SQL = Path(__file__).resolve().parents[1] / "sql"


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
    assert len(graph) > 20 and "jsproj.daemon" in graph["jsproj.status"], "the graph was read"
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
