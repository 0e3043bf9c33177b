"""The pytest plugin (jsproj.testing), run by pytest itself on a copy of the quest project.

Each run is a pytest session of its own in this process (pytester's
in-process runs: a subprocess per run cost ~7 s of a loaded machine's time,
mostly imports), which loads the plugin through its ``pytest11`` entry
point as a user's pytest does; one run is a real ``pytest`` subprocess, as
a user starts it. The store fixtures are pointed at the database the
session's own fixtures started (``--jsproj-dsn``).
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from jsproj import testing
from jsproj.tools import default_database as embedded
from test_docs import blocks

pytestmark = pytest.mark.slow  # pytest itself per test

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
QUEST = ROOT / "src" / "jsproj" / "examples" / "quest"
SPEC_NAMES = {
    "every arrival is a document of its own",
    "a party that starts and walks to Baerlon",
    "two quests meet in Moria",
}


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A copy of the quest project with a pytest.ini of its own, no JSPROJ_* settings inherited."""
    for name in ("JSPROJ_DSN", "JSPROJ_SPECS", "JSPROJ_PROJECTIONS", "JSPROJ_SCHEMA", "JSPROJ_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    for sub in ("projections", "specs"):
        shutil.copytree(QUEST / sub, pytester.path / sub)
    shutil.copy(QUEST / "events.jsonl", pytester.path)
    (pytester.path / "jsproj.toml").write_text("[jsproj]\n")  # a jsproj project: its specs are collected
    pytester.makeini("[pytest]\n")
    return pytester


#: The user's project has only the jsproj plugin to try: hypothesis's and xdist's (installed for jsproj's own
#: suite) are left out.
ONLY_JSPROJ = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist")


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_inprocess(*ONLY_JSPROJ, *args)


def run_as_a_user_does(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess(*ONLY_JSPROJ, *args, timeout=240)


def schemas(dsn: str, like: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select nspname from pg_namespace where nspname like %s", (like,)).fetchall()
    return {row[0] for row in rows}


def test_every_spec_is_an_item_and_passes(project: pytest.Pytester) -> None:
    collected = run(project, "--collect-only", "-q")
    items = [line for line in collected.outlines if "::" in line]
    assert {item.split("::", 1)[1] for item in items} == SPEC_NAMES
    assert {item.split("::")[0] for item in items} == {"specs/arrival.json", "specs/party.json"}
    run_as_a_user_does(project, "-v").assert_outcomes(passed=3)


def test_a_broken_spec_fails_naming_the_spec_and_the_difference(project: pytest.Pytester) -> None:
    party = project.path / "specs" / "party.json"
    party.write_text(party.read_text().replace('"traveled": 372', '"traveled": 373'))
    result = run(project)
    result.assert_outcomes(passed=2, failed=1)
    output = result.stdout.str()
    assert "spec 'two quests meet in Moria' (specs/party.json) failed in python" in output
    assert "--- expected aggregates.Traveled" in output
    assert '-  "traveled": 373' in output
    assert '+  "traveled": 372' in output
    assert "Traceback" not in output and "testing.py" not in output, "the diff, not the plugin's traceback"
    assert run(project, "-k", "Baerlon").ret == 0, "-k selects specs by name"


def test_a_malformed_spec_file_is_a_collection_error_naming_it(project: pytest.Pytester) -> None:
    (project.path / "specs" / "typo.json").write_text('{"given": [], "expcet": {}}')
    result = run(project)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert re.search(r"specs/typo\.json: unknown key 'expcet'", result.stdout.str())


def test_projections_that_do_not_load_and_a_broken_jsproj_toml_are_named(project: pytest.Pytester) -> None:
    (project.path / "projections" / "Broken.js").write_text("projections.aggregate('Broken').by({;")
    result = run(project)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["spec 'two quests meet in Moria' could not run: *Broken.js*SyntaxError*"])
    (project.path / "jsproj.toml").write_text('[jsproj]\nspecz = "checks"\n')
    result = run(project)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["jsproj: */jsproj.toml: unknown setting 'specz'*"])


def test_json_files_outside_the_specs_folder_are_never_collected(project: pytest.Pytester) -> None:
    (project.path / "data").mkdir()
    (project.path / "data" / "fixture.json").write_text('{"not": "a spec"}')
    (project.path / "specs" / "nested").mkdir()
    (project.path / "specs" / "nested" / "deeper.json").write_text("[1, 2]")
    run(project).assert_outcomes(passed=3)
    project.makeini("[pytest]\njsproj_specs = checks\n")
    (project.path / "specs").rename(project.path / "checks")
    (project.path / "specs").mkdir()
    (project.path / "specs" / "unrelated.json").write_text("{}")
    run(project).assert_outcomes(passed=3)


def test_an_unknown_spec_host_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\njsproj_spec_hosts = python nodejs\n")
    result = run(project)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "jsproj_spec_hosts: unknown host 'nodejs'" in result.stderr.str()


@pytest.mark.slow
def test_specs_run_in_the_database_and_node_hosts_named(project: pytest.Pytester, dsn: str) -> None:
    project.makeini("[pytest]\njsproj_spec_hosts = python node database\n")
    run(project, "--jsproj-dsn", dsn).assert_outcomes(passed=3)
    (project.path / "specs" / "party.json").unlink()
    arrival = project.path / "specs" / "arrival.json"
    arrival.write_text(arrival.read_text().replace('"day": 2', '"day": 3'))
    result = run(project, "--jsproj-dsn", dsn)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*failed in python, node, database-python", "  in database-python:"])
    assert schemas(dsn, "jsproj_spec_%") == set(), "each spec's schema is dropped"


def test_each_test_gets_a_schema_of_its_own_dropped_after_it(project: pytest.Pytester, dsn: str) -> None:
    keep = f"kept_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(keep)))
    project.makepyfile(
        test_isolation="""
        import pytest

        @pytest.mark.parametrize("n", [1, 2])
        def test_append(jsproj_store, n):
            result = jsproj_store.append(stream_id="quest-1", type="Quest", events=[{"$type": "EndOfDay"}])
            assert result.version == 1
            with jsproj_store.connection() as conn:
                database = conn.execute("select current_database()").fetchone()[0]
            with open(f"seen-{n}.txt", "w") as file:
                file.write(f"{database} {jsproj_store.schema}")
        """
    )
    run(project, "--jsproj-dsn", dsn, "test_isolation.py").assert_outcomes(passed=2)
    seen = [(project.path / f"seen-{n}.txt").read_text().split() for n in (1, 2)]
    assert {database for database, _ in seen} == {conninfo_to_dict(dsn)["dbname"]}
    made = {schema for _, schema in seen}
    assert len(made) == 2 and all(s.startswith(testing.SCHEMA_PREFIX) for s in made)
    assert schemas(dsn, "jsproj_test_%") == set(), "dropped after each test"
    assert schemas(dsn, keep) == {keep}, "a schema the plugin did not make is left alone"


def test_the_documented_example_test_file_passes(project: pytest.Pytester, dsn: str) -> None:
    [(_, attrs, body)] = [b for b in blocks(ROOT / "docs" / "testing.md") if b[0] == "python"]
    path = project.path / attrs["file"]
    path.parent.mkdir()
    path.write_text(body)
    run(project, "--jsproj-dsn", dsn, "-v").assert_outcomes(passed=6)  # its 3 tests and the 3 specs


def test_the_plugin_adds_nothing_but_jsproj_names() -> None:
    fixtures = {name for name, value in vars(testing).items() if type(value).__name__ == "FixtureFunctionDefinition"}
    assert len(fixtures) == 6 and all(name.startswith("jsproj_") for name in fixtures)


@pytest.mark.slow
@pytest.mark.server
def test_without_a_dsn_the_fixtures_use_the_embedded_database(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_embedded="""
        def test_append(jsproj_store, jsproj_dsn):
            assert jsproj_store.append(stream_id="q", type="Quest", events=[{"$type": "EndOfDay"}]).version == 1
            with open("dsn.txt", "w") as file:
                file.write(jsproj_dsn)
        """
    )
    folder = embedded.project_dir(project.path)
    cluster = embedded.default_cluster(folder)
    try:
        run(project, "test_embedded.py").assert_outcomes(passed=1)
        assert (project.path / "dsn.txt").read_text() == cluster.dsn
    finally:
        embedded.stop(folder)
        if embedded.SYSTEM_DATA_ROOT in cluster.data_dir.parents:
            shutil.rmtree(cluster.data_dir.parent, ignore_errors=True)


def test_json_in_a_specs_folder_of_a_project_that_is_not_jsprojs_is_never_collected(project: pytest.Pytester) -> None:
    (project.path / "jsproj.toml").unlink()
    (project.path / "specs" / "openapi.json").write_text('{"openapi": "3.1.0"}')
    result = run(project, "--collect-only", "-q")
    assert "openapi" not in result.stdout.str() and "party.json" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
