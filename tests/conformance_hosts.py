"""The hosts the conformance suite runs every case in, behind one interface.

Each host takes a case folder and returns what the case's ``expected.json``
describes: ``{"views", "aggregates"}`` or ``{"error": {...}}``, plus the
projection descriptions. Later hosts (PostgreSQL engines) join this list.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jsproj import errors
from jsproj.projections import Projections
from jsproj.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "conformance"
NODE = shutil.which("node")
NOW = "2026-01-01T00:00:00.000Z"


def events_file(case: Path) -> Path:
    found = [p for p in (case / "events.json", case / "events.jsonl") if p.exists()]
    assert len(found) == 1, f"{case.name} needs exactly one events.json or events.jsonl"
    return found[0]


class Host(Protocol):
    name: str

    def run(self, case: Path, page_size: int) -> dict[str, Any]: ...

    def describe(self, case: Path) -> list[dict[str, Any]]: ...


@dataclass
class PythonHost:
    """The Python host: the sandboxed V8 worker driven by jsproj.simulation."""

    name: str = "python"

    def run(self, case: Path, page_size: int) -> dict[str, Any]:
        try:
            with Projections.from_folder(case / "projections") as loaded:
                return dict(simulate(loaded, events_file(case), page_size=page_size, now=NOW))
        except errors.JsprojError as exc:
            return {"error": exc.to_dict()}

    def describe(self, case: Path) -> list[dict[str, Any]]:
        with Projections.from_folder(case / "projections") as loaded:
            return [{"name": i.name, "kind": i.kind, "lifecycle": i.lifecycle} for i in loaded.infos]


@dataclass
class NodeHost:
    """The Node.js host: js/bin/simulate.js in a real node process."""

    name: str = "node"

    def _node(self, *args: str) -> tuple[int, Any, str]:
        assert NODE, "node is not on the PATH"
        done = subprocess.run([NODE, *args], capture_output=True, text=True, timeout=120, check=False)
        return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr

    def run(self, case: Path, page_size: int) -> dict[str, Any]:
        code, output, stderr = self._node(
            str(ROOT / "js" / "bin" / "simulate.js"),
            str(case / "projections"),
            str(events_file(case)),
            "--page-size",
            str(page_size),
            "--now",
            NOW,
        )
        assert output is not None, f"simulate.js printed nothing (exit {code}): {stderr}"
        if "error" in output:
            assert code == 1, "an error must exit with code 1"
            assert stderr.startswith("error: "), stderr
        else:
            assert code == 0, stderr
        return output

    def describe(self, case: Path) -> list[dict[str, Any]]:
        code, output, stderr = self._node(str(ROOT / "js" / "bin" / "describe.js"), str(case / "projections"))
        assert code == 0, stderr
        return [{"name": i["name"], "kind": i["kind"], "lifecycle": i["lifecycle"]} for i in output]


HOSTS: list[Host] = [PythonHost(), NodeHost()]


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "expected.json").exists())


def check_against_expected(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Assert a host's output matches a case's expected.json."""
    if "error" in expected:
        assert "error" in actual, f"expected an error, got views: {json.dumps(actual)[:500]}"
        got = actual["error"]
        for key, want in expected["error"].items():
            if key == "stackIncludes":
                assert want in (got.get("stack") or ""), f"stack lacks {want!r}: {got.get('stack')}"
            elif key == "messageStartsWith":
                assert got["message"].startswith(want), got["message"]
            else:
                assert got.get(key) == want, f"error field {key}: {got.get(key)!r} != {want!r}"
        return
    assert "error" not in actual, f"unexpected error: {actual.get('error', {}).get('message')}"
    assert actual["views"] == expected["views"]
    assert actual["aggregates"] == expected["aggregates"]


def without_stack(output: dict[str, Any]) -> dict[str, Any]:
    if "error" not in output:
        return output
    return {"error": {k: v for k, v in output["error"].items() if k != "stack"}}
