"""docs/python.md, reading.md, lifecycle.md, replicas.md, daemon.md and from-kurrentdb.md, run as a user would: each ``python run=NAME`` block is a program run outside
the repository against a fresh database, and all of them pass ``mypy --strict`` against the installed package."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every docs/python.md script in a process of its own

ROOT = Path(__file__).resolve().parents[2]
PAGES = tuple(
    ROOT / "docs" / page
    for page in ("python.md", "reading.md", "lifecycle.md", "replicas.md", "daemon.md", "from-kurrentdb.md")
)
SCRIPT = re.compile(r"^```python run=(\w+)\n(.*?)^```", re.S | re.M)


def scripts() -> dict[str, str]:
    return {name: body for page in PAGES for name, body in SCRIPT.findall(page.read_text("utf-8"))}


def user_env(dsn: str) -> dict[str, str]:
    """The environment of an application: the database in JSPROJ_DSN, no repository on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSPROJ_") and k != "PYTHONPATH"}
    return {**env, "JSPROJ_DSN": dsn}


def test_the_page_has_its_scripts() -> None:
    pages = {
        "connect",
        "appending",
        "transaction",
        "asyncio",
        "projections",
        "errors",
        "reading",
        "lifecycle",
        "erasure",
        "replicas",
        "tenants",
        "emits",
    }
    assert pages <= set(scripts())


def test_no_script_uses_a_path_of_the_repository() -> None:
    for name, body in scripts().items():
        assert "src/" not in body and "examples/" not in body, f"{name} reaches into the repository"


@pytest.mark.parametrize("name", sorted(scripts()))
def test_a_python_doc_script_runs(name: str, dsn: str, tmp_path: Path) -> None:
    """Twice: a script runs again in a database it already ran in (as a reader trying it in theirs would)."""
    (tmp_path / f"doc_{name}.py").write_text(scripts()[name])
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, f"doc_{name}.py"], cwd=tmp_path, env=user_env(dsn), capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_the_python_doc_scripts_pass_mypy_strict(tmp_path: Path) -> None:
    for name, body in scripts().items():
        (tmp_path / f"doc_{name}.py").write_text(body)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *sorted(p.name for p in tmp_path.glob("*.py"))],
        cwd=tmp_path,
        env=user_env(""),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
