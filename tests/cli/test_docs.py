"""The README and docs/ are run: their examples must work as written.

- Fenced blocks tagged ``example=NAME`` (with ``file=...``) form a case: the
  ``.js`` files are projections, ``events.json(l)`` the events and
  ``expected.json`` what the Python host, Node and one storing host must print (DOC_HOSTS).
- ``python`` blocks in the README are executed.
- ``sh`` lines that run ``jsproj`` or ``node js/bin/...`` are executed.
- ``js`` projection blocks load without errors.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from jsproj.engine.projections import Projections

from conformance_hosts import check_against_expected, hosts, job

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: The engine's npm package, which host code in Node requires (js/package.json).
ENGINE_PACKAGE = json.loads((ROOT / "js" / "package.json").read_text("utf-8"))["name"]
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.S | re.M)


def blocks(path: Path) -> list[tuple[str, dict[str, str], str]]:
    found = []
    for lang, info, body in FENCE.findall(path.read_text("utf-8")):
        attrs = dict(part.split("=", 1) for part in info.split() if "=" in part)
        found.append((lang, attrs, body))
    return found


def examples() -> dict[str, list[tuple[Path, str, str]]]:
    cases: dict[str, list[tuple[Path, str, str]]] = {}
    for path in DOCS:
        for _, attrs, body in blocks(path):
            if "example" in attrs:
                cases.setdefault(f"{path.name}:{attrs['example']}", []).append((path, attrs["file"], body))
    return cases


#: The hosts the docs' examples run in, as dsl.md says (the Python host and Node), and one that stores: running
#: the same code in every other host is the conformance suite's job, not the docs'.
DOC_HOSTS = ("python", "node", "inline-python")


@pytest.mark.slow  # every example in the docs' hosts
@pytest.mark.parametrize("host", DOC_HOSTS)
@pytest.mark.parametrize("name", sorted(examples()))
def test_doc_example_in_the_docs_hosts(name: str, host: str, tmp_path: Path, databases) -> None:
    (tmp_path / "projections").mkdir()
    expected = None
    for _, file, body in examples()[name]:
        if file.endswith(".js"):
            (tmp_path / "projections" / file).write_text(body)
        elif file == "expected.json":
            expected = json.loads(body)
        else:
            (tmp_path / file).write_text(body)
    assert expected is not None, f"{name} has no expected.json block"
    check_against_expected(hosts(databases)[host].run(job(tmp_path, 1000)), expected)


def test_there_are_doc_examples() -> None:
    assert len(examples()) >= 4


def test_readme_python_blocks_run() -> None:
    code = [body for lang, _, body in blocks(ROOT / "README.md") if lang == "python"]
    assert code
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for body in code:
            exec(compile(body, "README.md", "exec"), {})  # noqa: S102 -- the README's own example
    finally:
        os.chdir(cwd)


def test_daemon_doc_python_blocks_run(store) -> None:
    """docs/daemon.md's Python runs against a store with the quest projections async and a daemon running."""
    import threading

    from jsproj.engine.projections import read_folder
    from jsproj.follow.daemon import Daemon
    from jsproj.projections.deploy import deploy

    code = [body for lang, _, body in blocks(ROOT / "docs" / "daemon.md") if lang == "python"]
    assert code
    quest = ROOT / "src" / "jsproj" / "examples" / "quest" / "projections"
    deploy(store, read_folder(quest), lifecycles={"Party": "async", "Traveled": "async"})
    daemon = Daemon(store.dsn, poll_interval=0.05)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        for body in code:
            exec(compile(body, "daemon.md", "exec"), {"store": store})  # noqa: S102 -- the doc's own example
    finally:
        daemon.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_subscriptions_doc_first_python_block_runs(store) -> None:
    """docs/subscriptions.md's example runs against a fresh store (the second block is a module to decorate)."""
    code = [body for lang, _, body in blocks(ROOT / "docs" / "subscriptions.md") if lang == "python"]
    assert len(code) == 2 and "myapp/handlers.py" in code[1]
    exec(compile(code[0], "subscriptions.md", "exec"), {"store": store})  # noqa: S102 -- the doc's own example
    namespace: dict = {"send_mail": lambda *args: None}
    exec(compile(code[1], "subscriptions.md", "exec"), namespace)  # noqa: S102 -- it decorates
    assert namespace["welcome_mail"].name == "welcome-mail"


def shell_commands() -> list[str]:
    commands = []
    for path in DOCS:
        for lang, attrs, body in blocks(path):
            if lang == "sh" and "script" not in attrs:
                commands += [line.split("#")[0].strip() for line in body.splitlines()]
    return [c for c in commands if c.startswith(("jsproj ", "node js/bin/"))]


@pytest.mark.parametrize("command", shell_commands())
def test_doc_shell_commands_run(command: str) -> None:
    argv = shlex.split(command)
    if argv[0] == "jsproj":
        argv[0] = str(Path(sys.executable).parent / "jsproj")
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_readme_node_example_runs(tmp_path: Path) -> None:
    [body] = [b for lang, _, b in blocks(ROOT / "README.md") if lang == "js" and f"require('{ENGINE_PACKAGE}')" in b]
    (tmp_path / "node_modules" / "@jsproj").mkdir(parents=True)
    (tmp_path / "node_modules" / ENGINE_PACKAGE).symlink_to(ROOT / "js")
    script = tmp_path / "example.js"
    script.write_text(body + "\nconsole.log(JSON.stringify(projector.store.find('Party', 'quest-9')));\n")
    done = subprocess.run(["node", str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"active": True, "traveled": 7, "location": "Bree", "members": []}


def projection_blocks() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for lang, attrs, body in blocks(path):
            host_code = any(f"require('{name}')" in body for name in (ENGINE_PACKAGE, "jsproj"))
            if lang == "js" and "example" not in attrs and not host_code and ".by(" in body:
                found.append((path.name, body))
    return found


@pytest.mark.parametrize(("doc", "body"), projection_blocks())
def test_doc_projection_blocks_load(doc: str, body: str) -> None:
    with Projections([{"file": "Example.js", "source": body}]) as loaded:
        assert loaded.names, f"a projection block in {doc} defines nothing"


def scripts() -> list[tuple[str, str]]:
    return [
        (f"{path.name}:{attrs['script']}", body)
        for path in DOCS
        for lang, attrs, body in blocks(path)
        if "script" in attrs
    ]


def script_params() -> list:
    """Each script, marked slow (a dozen processes); one that uses the embedded database (no --dsn) also ``server``."""
    params = []
    for name, body in scripts():
        embedded = "jsproj db start" in body or "jsproj deploy" in body
        params.append(pytest.param(name, body, id=name, marks=[pytest.mark.slow, *([pytest.mark.server] * embedded)]))
    return params


@pytest.mark.parametrize(("name", "body"), script_params())
def test_doc_scripts_run(name: str, body: str) -> None:
    """A ``sh script=NAME`` block runs as one bash script in a scratch copy of the repository's layout."""
    scratch = Path(tempfile.mkdtemp(prefix="jsproj-doc-"))
    os.chmod(scratch, 0o755)  # the database server's OS user must reach the project folder
    (scratch / "src").symlink_to(ROOT / "src")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSPROJ_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", body],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    finally:
        for project in scratch.rglob(".jsproj"):
            subprocess.run(
                [str(Path(sys.executable).parent / "jsproj"), "db", "stop"],
                cwd=project.parent,
                env=env,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(scratch, ignore_errors=True)


def test_readme_says_how_jsproj_gets_on_path_before_its_first_bare_jsproj_command() -> None:
    sh = [body for lang, _, body in blocks(ROOT / "README.md") if lang == "sh"]
    first = next(n for n, body in enumerate(sh) if any(line.startswith("jsproj ") for line in body.splitlines()))
    before = "\n".join(sh[:first])
    assert 'export PATH="$PWD/.venv/bin:$PATH"' in before, "the PATH line comes before the first bare jsproj"
    text = (ROOT / "README.md").read_text("utf-8")
    assert text.index("`.venv/bin/jsproj`") < text.index(sh[first])
    assert "VENV := .venv" in (ROOT / "Makefile").read_text("utf-8"), "make installs jsproj into .venv/bin"


STORE_SQL = [body for lang, _, body in blocks(ROOT / "docs" / "store.md") if lang == "sql"]


@pytest.mark.parametrize("body", STORE_SQL, ids=[f"sql-{n + 1}" for n in range(len(STORE_SQL))])
def test_store_doc_sql_returns_what_its_comment_says(body: str, dsn: str) -> None:
    statement, _, said = body.partition("\n-- ")
    with psycopg.connect(dsn) as conn:
        (got,) = conn.execute(statement).fetchone()
    assert got == json.loads(said), statement


def test_store_doc_has_sql_examples() -> None:
    assert len(STORE_SQL) >= 2


def test_every_boundary_of_the_security_doc_names_tests_that_exist() -> None:
    """docs/security.md names, for each boundary, the tests that show it: each must exist."""
    text = (ROOT / "docs" / "security.md").read_text("utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| what holds")]
    boundaries = [row for row in rows if row.count(" | ") >= 2 and not set(row) <= set("|- ")]
    assert len(boundaries) >= 12
    for row in boundaries:
        if "test" not in row.rsplit(" | ", 1)[-1] and "conformance" not in row.rsplit(" | ", 1)[-1]:
            continue  # the assets' and actors' tables
        named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", row)
        cases = re.findall(r"conformance `([\w-]+)`|, `([a-z]+(?:-[a-z]+)+)`", row)
        assert named or cases, f"a boundary names no test: {row[:80]}"
        for path, name in named:
            source = (ROOT / path).read_text("utf-8")
            assert not name or re.search(rf"^def {name}\(", source, re.MULTILINE), f"{path}::{name} does not exist"
        for case in (c for pair in cases for c in pair if c):
            assert (ROOT / "tests" / "conformance" / case / "expected.json").is_file(), f"no conformance case {case}"
    for js_test in re.findall(r"`js/test/([\w.]+\.js)` \(\"([^\"]+)\"\)", text):
        assert f"test('{js_test[1]}" in (ROOT / "js" / "test" / js_test[0]).read_text("utf-8"), js_test
