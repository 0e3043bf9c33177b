"""The package's shape: no import cycles between jsproj's modules (lazy imports inside functions included), one SQL definition per function."""

from __future__ import annotations

import ast
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
