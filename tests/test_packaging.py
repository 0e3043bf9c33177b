"""The wheel carries the JavaScript engine and the bundled example."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_the_engine_and_examples(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("jsproj-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    bundle = json.loads((ROOT / "js" / "lib" / "bundle.json").read_text())
    for file in [*bundle, "bundle.json", "lockdown.js"]:
        assert f"jsproj/js/lib/{file}" in names, file
    assert "jsproj/examples/quest/events.jsonl" in names
    assert "jsproj/runtime/worker.py" in names
