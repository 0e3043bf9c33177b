"""The wheel carries the JavaScript engine and the bundled example."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
    assert "jsproj/engine/worker.py" in names
    assert "jsproj/tools/dashboard.html" in names  # the dashboard's page
    assert unresolved_requires(zipfile.ZipFile(wheel)) == [], "every file the Node host requires is in the wheel"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert_metadata_stands_alone(metadata)


REPOSITORY = "https://github.com/jsproj/jsproj/blob/main/"


def unresolved_requires(wheel: zipfile.ZipFile) -> list[str]:
    """The relative ``require('./x')`` / ``require('../x')`` of the wheel's JavaScript that name no file in it
    (``js/bin/simulate.js`` runs the Node host of ``jsproj test`` from an installed package)."""
    import posixpath
    import re

    names = set(wheel.namelist())
    missing = []
    for name in sorted(n for n in names if n.startswith("jsproj/js/") and n.endswith(".js")):
        for target in re.findall(r"require\('(\.{1,2}/[^']+)'\)", wheel.read(name).decode()):
            path = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if not {path, path + ".js", path + ".json", path + "/index.js"} & names:
                missing.append(f"{name}: {target}")
    return missing


def assert_metadata_stands_alone(metadata: str) -> None:
    """What PyPI shows: project URLs and classifiers, and a README whose links work outside the repository
    (every link into the repository absolute, to a file that exists)."""
    import re

    headers, _, description = metadata.partition("\n\n")
    urls = dict(re.findall(r"^Project-URL: ([^,]+), (\S+)$", headers, re.M))
    assert {"Homepage", "Documentation", "Repository", "Issues"} <= set(urls), headers
    assert "Classifier: Topic :: Database" in headers and "Classifier: Typing :: Typed" in headers
    assert "Provides-Extra: server" in headers
    links = re.findall(r"\]\(([^)\s]+)\)", description)
    assert len(links) > 20 and [x for x in links if not x.startswith(("https://", "http://", "#"))] == []
    for link in links:
        if link.startswith(REPOSITORY):
            assert (ROOT / link.removeprefix(REPOSITORY).split("#")[0]).exists(), link


def test_runtime_dependencies_are_ranges_whose_lower_bounds_make_test_lowest_installs() -> None:
    """Applications choose their versions: no pins and no upper bounds; each lower bound is what
    `make test-lowest` runs the suite with, and constraints.txt pins what `make` installs."""
    import re
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))["project"]

    def pins(name: str) -> dict[str, str]:
        lines = (root / name).read_text("utf-8").splitlines()
        found = (re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip()) for line in lines)
        return {m[1].lower().replace("_", "-"): m[2] for m in found if m}

    lowest, locked = pins("constraints-lowest.txt"), pins("constraints.txt")
    for requirement in project["dependencies"]:
        name, bound = re.fullmatch(r"([a-z0-9-]+)>=([0-9.]+)", requirement).groups()  # type: ignore[union-attr]
        assert lowest[name] == bound, f"{name}: constraints-lowest.txt has {lowest.get(name)}, not {bound}"
        assert name in locked, f"{name} is not pinned in constraints.txt"
    assert project["optional-dependencies"]["binary"] == ["psycopg[binary]>=3.3.0"]
