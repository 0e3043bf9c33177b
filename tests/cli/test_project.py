"""The project commands (init, check, test), settings from jsproj.toml, and the demo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest

from clihelp import QUEST, jsproj
from jsproj import errors
from jsproj.config import project_file, resolve_engine, resolve_folder, resolve_schema
from jsproj.tools.hosts import PythonHost, StoreHost, schemas_in
from jsproj.tools.specs import SpecFileError, load_specs, run_specs

from conformance_hosts import CASES, LANGUAGES, require_language

# -- init -------------------------------------------------------------------------


def test_init_scaffolds_a_project_whose_checks_and_specs_pass(tmp_path: Path) -> None:
    done = jsproj("init", str(tmp_path / "app"))
    assert done.returncode == 0, done.stderr
    app = tmp_path / "app"
    assert (app / "jsproj.toml").is_file() and (app / "events.jsonl").is_file()
    assert sorted(p.name for p in (app / "projections").iterdir()) == [
        "Arrival.js", "Journal.js", "Party.js", "Traveled.js", "Visitors.js",
    ]  # fmt: skip
    assert "Try next:" in done.stdout
    assert jsproj("check", cwd=app).returncode == 0
    tested = jsproj("test", "--json", cwd=app)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    report = json.loads(tested.stdout)
    assert report["failed"] == 0 and report["passed"] >= 3
    checked = json.loads(jsproj("check", "--json", cwd=app).stdout)
    kinds = {(i["kind"], i["lifecycle"]) for i in checked["projections"]}  # every kind and lifecycle
    assert {kind for kind, _ in kinds} == {"stream", "event", "aggregate", "view"}
    assert {lifecycle for _, lifecycle in kinds} == {"inline", "async", "live"}


def test_check_names_a_handler_spelt_almost_like_an_event_type_the_project_has(tmp_path: Path) -> None:
    app = tmp_path / "app"
    assert jsproj("init", str(app)).returncode == 0
    traveled = app / "projections" / "Traveled.js"
    traveled.write_text(traveled.read_text().replace("TownReached:", "TownReachd:") + "\n"
                        "projections.aggregate('Later').by({ InvoiceSent: function (s, e) { s.n = 1; } });\n")  # fmt: skip
    done = jsproj("check", cwd=app)
    assert done.returncode == 1
    assert (
        "projection Traveled handles 'TownReachd', which no spec or events file has: did you mean "
        "'TownReached'?" in done.stderr
    ), done.stderr
    assert "InvoiceSent" not in done.stderr, "a type with no near name is an event still to come, left alone"
    problem = json.loads(jsproj("check", "--json", cwd=app).stdout)["problems"]
    assert [(p["kind"], p["projection"], p["file"]) for p in problem] == [
        ("MisspeltHandlerError", "Traveled", "Traveled.js")
    ]


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    (tmp_path / "jsproj.toml").write_text("# mine\n")
    done = jsproj("init", str(tmp_path))
    assert done.returncode == 1
    assert "already has jsproj.toml" in done.stderr and "nothing was written" in done.stderr
    assert (tmp_path / "jsproj.toml").read_text() == "# mine\n"
    assert not (tmp_path / "projections").exists()
    assert jsproj("init", str(tmp_path), "--force").returncode == 0
    assert "[jsproj]" in (tmp_path / "jsproj.toml").read_text()


# -- settings ---------------------------------------------------------------------


def test_settings_resolve_flags_then_environment_then_jsproj_toml(tmp_path: Path, monkeypatch) -> None:
    for name in ("JSPROJ_SCHEMA", "JSPROJ_ENGINE", "JSPROJ_PROJECTIONS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jsproj.toml").write_text('[jsproj]\nschema = "from_toml"\nengine = "plpython"\nprojections = "js"\n')
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found in a parent folder, folders relative to it
    assert resolve_schema() == "from_toml"
    assert resolve_engine() == "plpython"
    assert resolve_folder("projections") == tmp_path / "js"
    assert resolve_folder("specs") == tmp_path / "specs"
    monkeypatch.setenv("JSPROJ_SCHEMA", "from_env")
    monkeypatch.setenv("JSPROJ_ENGINE", "python")
    assert resolve_schema() == "from_env" and resolve_engine() == "python"
    assert resolve_schema("from_flag") == "from_flag" and resolve_engine("plv8") == "plv8"
    assert resolve_folder("projections", Path("flag")) == Path("flag")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[jsproj\n", "not valid TOML"),
        ('[jsproj]\nschemas = "x"\n', "unknown setting 'schemas'"),
        ("[jsproj]\nschema = 3\n", "schema must be a string"),
        ('[jsproj]\nengine = "java"\n', "engine is one of python, plpython, plv8"),
        # a key outside [jsproj] was ignored: a misplaced setting silently did nothing
        ('dsn = "postgresql://elsewhere"\n[jsproj]\nschema = "x"\n', "unknown top-level setting 'dsn'"),
        ("[daemon]\npage_size = 5\n", "unknown top-level setting 'daemon'"),
    ],
)
def test_a_bad_jsproj_toml_is_a_clear_error(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "jsproj.toml").write_text(text)
    with pytest.raises(errors.InputError, match=problem):
        project_file(tmp_path)
    done = jsproj("status", cwd=tmp_path)
    assert done.returncode == 1 and problem.split("'")[0] in done.stderr and "Traceback" not in done.stderr


# -- check ------------------------------------------------------------------------

BROKEN = {
    "a.js": "projections.projectStream('Quest').named('Party').by({\n  QuestStarted: function (state) {\n    state.x = ;\n  }\n});\n",
    "b.js": "projections.aggregate('Counter').by({ A: 3 });\n",
    "c.js": "projections.aggregate('Drop table').by({ A: function () {} });\n",
    "d.js": "projections.aggregate('Life').by({ A: function () {} });\n",
    "e.js": "projections.aggregate('life').by({ A: function () {} });\n",
    "f.js": "var p = projections.aggregate('Other').by({ A: function () {} }); p.lifecycle = 'sometimes';\n",
    "g.js": "// nothing here yet\n",
}


def test_check_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    for name, source in BROKEN.items():
        (tmp_path / name).write_text(source)
    done = jsproj("check", str(tmp_path), "--json")
    assert done.returncode == 1
    problems = {p["file"]: p for p in json.loads(done.stdout)["problems"]}
    assert problems["a.js"]["kind"] == "ProjectionSyntaxError" and problems["a.js"]["line"] == 3
    assert "the handler for A is a number, not a function" in problems["b.js"]["message"]
    assert "is not a safe identifier" in problems["c.js"]["message"]
    assert "differs from Life (d.js) only by case" in problems["e.js"]["message"]
    assert 'unknown lifecycle "sometimes"' in problems["f.js"]["message"]
    assert problems["g.js"]["kind"] == "EmptyProjectionFile"
    human = jsproj("check", str(tmp_path))
    assert human.returncode == 1
    assert "a.js:3: SyntaxError" in human.stderr and "6 problems" in human.stderr


def test_check_lists_the_upcasters_and_reports_those_that_clash_only_when_the_files_meet(tmp_path: Path) -> None:
    shutil.copytree(CASES / "upcasting" / "projections", tmp_path, dirs_exist_ok=True)
    done = jsproj("check", str(tmp_path), "--json")
    assert done.returncode == 0, done.stdout
    found = json.loads(done.stdout)
    assert found["upcasters"] == [{"eventType": "QuestStarted", "from": n, "to": n + 1, "file": "upcasters.js"}
                                  for n in (1, 2)]  # fmt: skip
    assert found["renames"] == [{"from": "QuestBegun", "to": "QuestStarted", "file": "upcasters.js"}]
    human = jsproj("check", str(tmp_path)).stdout
    assert "  rename QuestBegun -> QuestStarted (upcasters.js)" in human, "a file of upcasters is not empty"
    # alone each file loads; together the upcaster is of a name renamed away
    (tmp_path / "old.js").write_text("projections.upcast('QuestBegun').from(1).by(function (e) { return e; });\n")
    clash = jsproj("check", str(tmp_path), "--json")
    assert clash.returncode == 1
    [problem] = json.loads(clash.stdout)["problems"]
    assert (problem["kind"], problem["file"]) == ("ProjectionDefinitionError", "old.js")
    assert "QuestBegun is renamed to QuestStarted (upcasters.js)" in problem["message"]


def test_check_finds_the_same_name_in_two_files_and_a_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "one.js").write_text("projections.aggregate('Twice').by({ A: function () {} });\n")
    (tmp_path / "two.js").write_text("projections.aggregate('Twice').by({ B: function () {} });\n")
    done = jsproj("check", str(tmp_path), "--json")
    assert done.returncode == 1
    assert "Twice is also defined in one.js" in json.loads(done.stdout)["problems"][0]["message"]
    missing = jsproj("check", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "no such projections folder" in missing.stderr


# -- test (specs) -------------------------------------------------------------------


def project(tmp_path: Path) -> Path:
    shutil.copytree(QUEST, tmp_path / "quest")
    return tmp_path / "quest"


def test_a_failing_spec_shows_a_diff_and_fails_the_command(tmp_path: Path) -> None:
    app = project(tmp_path)
    spec = app / "specs" / "party.json"
    spec.write_text(spec.read_text().replace('"traveled": 17', '"traveled": 18'))
    done = jsproj("test", str(app))
    assert done.returncode == 1
    assert "FAIL a party that starts and walks to Baerlon" in done.stdout
    assert '-    "traveled": 18' in done.stdout and '+    "traveled": 17' in done.stdout
    assert "PASS two quests meet in Moria" in done.stdout
    only = jsproj("test", str(app), "-k", "Moria", "--json")
    assert only.returncode == 0 and json.loads(only.stdout)["passed"] >= 1


def test_specs_can_expect_a_handler_error(tmp_path: Path) -> None:
    app = project(tmp_path)
    (app / "projections" / "Party.js").write_text(
        (app / "projections" / "Party.js")
        .read_text()
        .replace(
            "state.location = evt.location;\n      state.traveled",
            "if (evt.location === 'Moria') throw new Error('none come back from Moria');\n"
            "      state.location = evt.location;\n      state.traveled",
        )
    )
    (app / "specs" / "party.json").unlink()
    (app / "specs" / "moria.json").write_text(json.dumps({
        "name": "Moria is refused",
        "given": [{"id": "q", "type": "Quest", "data": {"$type": "TownReached", "location": "Moria", "traveled": 1}}],
        "expect": {"error": {"projection": "Party", "message": "none come back"}},
    }))  # fmt: skip
    done = jsproj("test", str(app), "--json")
    assert done.returncode == 0, done.stdout
    assert {r["host"] for r in json.loads(done.stdout)["results"]} >= {"python"}


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("{", "not valid JSON"),
        ('{"given": []}', "expect must be an object"),
        ('{"given": [], "expect": {"view": {}}}', "unknown expectation 'view'"),
        ('{"given": 3, "expect": {"views": {}}}', "given must be a list of append messages"),
        ('{"given": "missing.jsonl", "expect": {"views": {}}}', "cannot read the given events file"),
    ],
)
def test_bad_spec_files_are_clear_errors(tmp_path: Path, spec: str, problem: str) -> None:
    (tmp_path / "bad.json").write_text(spec)
    with pytest.raises(SpecFileError, match=problem):
        load_specs(tmp_path)


@pytest.mark.slow
def test_specs_run_in_a_real_store_with_both_engines(dsn: str) -> None:
    specs = load_specs(QUEST / "specs")
    hosts = [PythonHost(), StoreHost(schemas_in(dsn), "python"), StoreHost(schemas_in(dsn), "plpython")]
    results = run_specs(QUEST / "projections", specs, hosts)
    assert [r.problems for r in results if not r.passed] == []
    assert {r.host for r in results} == {"python", "database-python", "database-plpython"}
    with psycopg.connect(dsn) as conn:  # every spec's schema is gone
        assert conn.execute("select count(*) from pg_namespace where nspname like 'jsproj_spec_%'").fetchone() == (0,)


@pytest.mark.slow
def test_specs_run_in_plv8_and_pljs_a_schema_each_in_one_backend(cluster, dsn: str, tmp_path: Path) -> None:
    for language in LANGUAGES:
        require_language(cluster.dsn, language)
    app = project(tmp_path)
    done = jsproj("test", str(app), "--dsn", dsn, "--engine", "plv8", "--engine", "pljs", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert {"database-plv8", "database-pljs"} <= set(report["hosts"])


def test_the_test_command_runs_the_database_host_with_dsn(dsn: str, tmp_path: Path) -> None:
    app = project(tmp_path)
    done = jsproj("test", str(app), "--dsn", dsn, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "database-python" in json.loads(done.stdout)["hosts"]
    assert " INFO " not in done.stderr, "the database host's daemon keeps its INFO lines out of the report"


# -- demo ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_runs_end_to_end_and_again(dsn: str) -> None:
    first = jsproj("demo", "--dsn", dsn, "--quests", "40")
    assert first.returncode == 0, first.stderr
    for shown in ("1. deployed 5 projections", "Party: one document per quest", "Journal of quest-1", "Try next:"):
        assert shown in first.stdout
    assert " INFO " not in first.stdout + first.stderr, "the daemon's INFO lines stay out of the show's progress"
    deployed = next(line for line in first.stdout.splitlines() if line.startswith("1. deployed"))
    assert deployed.endswith("Visitors (view, async)"), "a sentence is one line, not wrapped at 80 columns"
    again = jsproj("demo", "--dsn", dsn, "--quests", "40", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert len(result["views"]["views"]["Party"]) == 42  # the two example quests and 40 generated ones
    assert result["live"]["Journal"]["quest-1"]["entries"][-1] == "6. QuestEnded at The Eye of the World"
    traveled = result["views"]["aggregates"]["Traveled"]["traveled"]
    assert traveled == sum(doc["traveled"] for doc in result["views"]["views"]["Party"].values())
    assert {s["name"]: s["status"] for s in result["status"]}["Visitors"] == "running"
    assert all(s["lagEvents"] in (None, 0) for s in result["status"])


def test_demo_test_and_repl_errors_are_one_line(tmp_path: Path) -> None:
    bad_schema = jsproj("demo", "--schema", "no-dashes", "--dsn", "postgresql:///nowhere")
    assert bad_schema.returncode == 1 and "is not a safe identifier" in bad_schema.stderr
    unreachable = jsproj("demo", "--dsn", f"host={tmp_path} port=1 dbname=x connect_timeout=2")
    assert unreachable.returncode == 1 and unreachable.stderr.startswith("error: ")
    no_specs = jsproj("test", str(tmp_path))
    assert no_specs.returncode == 1 and "no such specs folder" in no_specs.stderr
    no_folder = jsproj("repl", str(tmp_path / "missing"), stdin="")
    assert no_folder.returncode == 1 and "no such projections folder" in no_folder.stderr
    for done in (bad_schema, unreachable, no_specs, no_folder):
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
