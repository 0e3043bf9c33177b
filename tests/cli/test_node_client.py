"""The Node client package (js/client, @jsproj/client): its node tests against a real store, its
declarations compiled by TypeScript, and both npm packages packed and installed in an empty folder.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from clihelp import QUEST
from jsproj.engine.projections import read_folder
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore

from conformance_hosts import LANGUAGES, require_language

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "js" / "client"
NODE = shutil.which("node")
NPM = shutil.which("npm")


def as_url(dsn: str) -> str:
    """A libpq keyword DSN as the URL the pg driver reads (a socket folder goes in ?host=)."""
    parts = psycopg.conninfo.conninfo_to_dict(dsn)
    return (f"postgresql://{quote(str(parts['user']))}@/{quote(str(parts['dbname']))}"
            f"?host={quote(str(parts['host']))}&port={parts['port']}")  # fmt: skip


@pytest.mark.parametrize("engine", ["plpython", *LANGUAGES])
def test_the_client_passes_its_node_tests_against_a_real_store(dsn: str, engine: str) -> None:
    """Every in-database engine: the client appends with SQL, so inline projections run in the database."""
    assert NODE, "node is not on the PATH"
    assert (CLIENT / "node_modules" / "pg").is_dir(), "make install runs npm ci in js/client"
    if engine in LANGUAGES:
        require_language(dsn, engine)
    with EventStore(dsn, max_size=1) as store:
        deploy(store, read_folder(QUEST / "projections"), engine=engine, lifecycles={"Traveled": "inline"})
    # One file at a time: they share the database (client.test.js empties it once).
    files = sorted(str(path.relative_to(CLIENT)) for path in (CLIENT / "test").glob("*.test.js"))
    assert len(files) >= 2, files
    done = subprocess.run([NODE, "--test", "--test-concurrency=1", *files], cwd=CLIENT, capture_output=True, text=True,
                          timeout=300, check=False, env={"PATH": str(Path(NODE).parent), "JSPROJ_TEST_DSN": as_url(dsn)})  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    counts = dict(re.findall(r"^# (pass|fail|skipped|todo) (\d+)$", done.stdout, re.M))
    assert counts["fail"] == "0" and counts["skipped"] == "0" and int(counts["pass"]) >= 15, counts


@pytest.mark.slow
def test_the_declarations_describe_real_use() -> None:
    done = subprocess.run([str(CLIENT / "node_modules" / ".bin" / "tsc"), "-p", str(CLIENT / "test" / "types")],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("folder", "name"), [(ROOT / "js", "@jsproj/projections"), (CLIENT, "@jsproj/client")])
def test_each_npm_package_packs_and_works_installed_in_an_empty_folder(tmp_path: Path, folder: Path, name: str) -> None:
    assert NPM, "npm is not on the PATH"
    packed = subprocess.run([NPM, "pack", "--silent", "--pack-destination", str(tmp_path)], cwd=folder,
                            capture_output=True, text=True, timeout=300, check=True).stdout.split()[-1]  # fmt: skip
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "app", "version": "1.0.0", "private": True}))
    subprocess.run([NPM, "install", "--silent", "--no-audit", "--no-fund", str(tmp_path / packed)], cwd=app,
                   capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    check = ("const m = require(process.argv[1]); const names = Object.keys(m).concat(Object.getOwnPropertyNames(m));"
             "console.log(JSON.stringify({projectStream: typeof m.projectStream, connect: typeof m.connect,"
             " live: typeof (m.EventStore && m.EventStore.prototype.live)}))")  # fmt: skip
    done = subprocess.run(
        [NODE or "node", "-e", check, name], cwd=app, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    shape = json.loads(done.stdout)
    if name == "@jsproj/projections":
        assert shape["projectStream"] == "function"
    else:
        assert shape == {"projectStream": "undefined", "connect": "function", "live": "function"}
    assert (app / "node_modules" / name / ("index.d.ts")).is_file(), "the declarations ship with the package"
