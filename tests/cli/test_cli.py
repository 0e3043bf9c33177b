"""The jsproj command line, run as a user runs it: in-process (clihelp.jsproj), and the installed
console script itself for its version, its help and an error with a traceback."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from clihelp import QUEST, ROOT, jsproj, jsproj_process
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore

from projections import counting

CASES = ROOT / "tests" / "conformance"


def test_simulate_json_prints_exactly_one_json_document() -> None:
    done = jsproj("simulate", str(QUEST / "projections"), str(QUEST / "events.jsonl"), "--json")
    assert done.returncode == 0, done.stderr
    views = json.loads(done.stdout)
    assert views["aggregates"]["Traveled"] == {"traveled": 372, "days": 2}
    assert views["views"]["Party"]["quest-1"]["active"] is False
    assert set(views["views"]) == {"Arrival", "Journal", "Party", "Visitors"}


def test_simulate_reads_stdin_and_prints_tables() -> None:
    events = (QUEST / "events.jsonl").read_text()
    done = jsproj("simulate", str(QUEST / "projections"), "-", stdin=events)
    assert done.returncode == 0, done.stderr
    assert "Party (2 documents)" in done.stdout
    assert "The Eye of the World" in done.stdout
    assert "Traveled" in done.stdout
    first = events.splitlines()[0] + "\n"
    one = jsproj("simulate", str(QUEST / "projections"), "-", stdin=first)
    assert "Party (1 document)" in one.stdout, "one is singular"


def test_simulate_page_size_does_not_change_the_result() -> None:
    args = [
        "simulate",
        str(QUEST / "projections"),
        str(QUEST / "events.jsonl"),
        "--json",
        "--now",
        "2026-01-01T00:00:00Z",
    ]
    assert json.loads(jsproj(*args, "--page-size", "1").stdout) == json.loads(jsproj(*args).stdout)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("error-throwing-handler", "error: projection Fragile failed on TownReached event"),
        ("error-syntax", "error: Broken.js:4: SyntaxError:"),
        ("error-missing-type", "error: message 2, event 2: Missing $type"),
        ("error-concurrency", 'error: message 3: stream "s1" is at version 3, not the expected version 2'),
    ],
)
def test_errors_are_one_line_on_stderr_with_the_error_document_on_stdout(case: str, message: str) -> None:
    folder = CASES / case
    events = next(p for p in folder.iterdir() if p.name.startswith("events."))
    done = jsproj("simulate", str(folder / "projections"), str(events), "--json")
    assert done.returncode == 1
    assert done.stderr.startswith(message), done.stderr
    assert done.stderr.count("\n") == 1, "one line"
    assert "Traceback" not in done.stderr
    assert (
        json.loads(done.stdout)["error"]["kind"] == json.loads((folder / "expected.json").read_text())["error"]["kind"]
    )


def test_verbose_adds_the_traceback() -> None:
    folder = CASES / "error-throwing-handler"
    done = jsproj_process("--verbose", "simulate", str(folder / "projections"), str(folder / "events.json"))
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "error: projection Fragile failed" in done.stderr
    after = jsproj("simulate", str(folder / "projections"), str(folder / "events.json"), "--verbose")
    assert after.returncode == 1
    assert "Traceback" in after.stderr, "--verbose after the command too"
    assert "Traceback" not in jsproj("simulate", str(folder / "projections"), str(folder / "events.json")).stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["simulate", "/no/such/folder", str(QUEST / "events.jsonl")],
            "error: no such projections folder: /no/such/folder",
        ),
        (
            ["simulate", str(QUEST / "projections"), "/no/such/events.json"],
            "error: No such file or directory: /no/such/events.json",
        ),
        (["simulate", str(ROOT / "docs"), str(QUEST / "events.jsonl")], "error: no projection files (*.js) in"),
    ],
)
def test_missing_inputs_are_one_line_errors(args: list[str], message: str) -> None:
    done = jsproj(*args)
    assert done.returncode == 1
    assert done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr


def test_an_events_file_that_is_not_utf8_names_the_file_line_and_byte(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"id": "a", "type": "T", "data": {"$type": "A"}}\n{"id": "b\xff", "data": {"$type": "A"}}\n')
    done = jsproj("simulate", str(QUEST / "projections"), str(events), "--json")
    assert done.returncode == 1
    assert done.stderr == f"error: {events}: line 2: not UTF-8 text (byte 58: b'\\xff')\n"
    assert json.loads(done.stdout)["error"] == {
        "kind": "EventsFileError",
        "message": f"{events}: line 2: not UTF-8 text (byte 58: b'\\xff')",
        "line": 2,
        "offset": 58,
    }


def test_bad_options_are_usage_errors() -> None:
    done = jsproj("simulate", str(QUEST / "projections"), str(QUEST / "events.jsonl"), "--page-size", "0")
    assert done.returncode == 2
    assert "page-size" in done.stderr


def test_projection_console_output_goes_to_stderr(tmp_path: Path) -> None:
    (tmp_path / "Talky.js").write_text(
        "projections.aggregate('Talky').by({ A: function () { console.log('hello from', 'Talky'); } });"
    )
    events = tmp_path / "events.json"
    events.write_text('[{"type": "T", "data": {"$type": "A"}}]')
    done = jsproj("simulate", str(tmp_path), str(events), "--json")
    assert done.returncode == 0
    assert "[Talky] hello from Talky" in done.stderr
    assert json.loads(done.stdout)["aggregates"] == {"Talky": {}}


def test_sandbox_limits_are_options(tmp_path: Path) -> None:
    (tmp_path / "Spin.js").write_text("projections.aggregate('Spin').by({ A: function () { while (true) {} } });")
    events = tmp_path / "events.json"
    events.write_text('[{"type": "T", "data": {"$type": "A"}}]')
    done = jsproj("simulate", str(tmp_path), str(events), "--timeout", "0.5")
    assert done.returncode == 1
    assert done.stderr.startswith("error: projection Spin (on A event at position 1) ran past the time limit of 0.5 s")


def test_every_command_has_help_with_examples() -> None:
    top = jsproj_process("--help")
    assert top.returncode == 0
    commands = [line.split()[0] for line in top.stdout.split("Commands:")[1].splitlines() if line[2:3].isalpha()]
    assert {"demo", "init", "check", "test", "repl", "simulate", "daemon", "status"} <= set(commands)
    for command in commands:
        done = jsproj(command, "--help")
        assert done.returncode == 0, command
        assert "Examples:" in done.stdout, f"jsproj {command} --help has no examples"


def test_help_texts_end_their_sentences() -> None:
    for command in ("sql", "deploy", "append", "view"):
        text = jsproj(command, "--help").stdout.split("Examples:")[0].rstrip()
        assert text.endswith((".", ")")), (command, text[-80:])


def test_help_lists_each_command_with_its_whole_first_sentence_and_one_env_var_notation() -> None:
    for args in (["--help"], ["db", "--help"]):
        listed = jsproj_process(*args, env={"COLUMNS": "80"}).stdout.split("Commands:")[1]
        summaries = re.split(r"\n  (?=[a-z])", listed.strip())
        assert len(summaries) >= 5 and all(s.rstrip().endswith((".", ")")) for s in summaries), summaries
        assert "..." not in listed
    for command in ("deploy", "append", "status", "daemon", "repl", "sql", "check"):
        text = " ".join(jsproj(command, "--help").stdout.split())  # as read, whatever the wrapping
        assert "[env:" not in text and "[env var: JSPROJ_" in text, command
    assert "default: schema in jsproj.toml, else public" in " ".join(jsproj("status", "--help").stdout.split())


def test_version() -> None:
    done = jsproj_process("--version")
    assert done.returncode == 0
    assert "0.1.0" in done.stdout


def test_shell_completion_scripts_are_generated() -> None:
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete --no-files")):
        done = jsproj(env={"_JSPROJ_COMPLETE": f"{shell}_source"})
        assert done.returncode == 0 and marker in done.stdout, shell
    done = jsproj(env={"_JSPROJ_COMPLETE": "bash_complete", "COMP_WORDS": "jsproj dea", "COMP_CWORD": "1"})
    assert "dead-letters" in done.stdout


def test_projection_names_complete_from_the_store_the_command_would_use(store: EventStore, dsn: str) -> None:
    deploy(store, [{"file": "Count.js", "source": counting("Count")}, {"file": "Coins.js", "source": counting("Coins")},
                   {"file": "Party.js", "source": counting("Party")}])  # fmt: skip

    def complete(words: str) -> list[str]:
        env = {"_JSPROJ_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        return [line.split(",", 1)[1] for line in jsproj(env=env).stdout.splitlines() if line]

    parts = conninfo_to_dict(dsn)
    url = f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}&port={parts['port']}"  # one word
    assert complete(f"jsproj view --dsn {url} Co") == ["Coins", "Count"]
    assert complete(f"jsproj rebuild --dsn {url} P") == ["Party"]
    assert complete(f"jsproj dead-letters --dsn {url} --projection Cou") == ["Count"]
    assert complete("jsproj view --dsn postgresql://nobody@/nodb?host=/nonexistent Co") == [], "nothing, no error"


def test_in_process_runs_leave_cwd_environment_and_signal_handlers_as_they_were(dsn: str, tmp_path: Path) -> None:
    """clihelp.jsproj runs commands in this process: what they change for the run must be restored after it."""
    (tmp_path / "Count.js").write_text(counting("Count"))
    assert jsproj("deploy", "--projections", str(tmp_path), "--lifecycle", "Count=async", "--dsn", dsn).returncode == 0
    two = '{"id": "s", "type": "T", "data": [{"$type": "A"}, {"$type": "B"}]}'
    assert jsproj("append", "-", "--dsn", dsn, stdin=two).returncode == 0
    before = (os.getcwd(), dict(os.environ), signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    done = jsproj("daemon", "--until-caught-up", "--poll-interval", "0.05", cwd=tmp_path, env={"JSPROJ_DSN": dsn})
    assert done.returncode == 0, done.stderr
    assert "caught up (2 events)" in done.stderr, done.stderr  # the store of the given JSPROJ_DSN
    failed = jsproj("stream", "nope", cwd=tmp_path, env={"JSPROJ_DSN": dsn})
    assert failed.stderr == "error: there is no stream 'nope'\n"
    after = (os.getcwd(), dict(os.environ), signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    assert after == before


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "1e9", "soon"])
def test_a_duration_that_is_not_a_finite_number_of_seconds_is_refused(value: str, tmp_path) -> None:
    """click's FloatRange lets nan through (every comparison with it is false): durations are checked as finite."""
    for command in (["simulate", str(tmp_path), str(tmp_path / "e.json"), "--timeout", value],
                    ["daemon", "--poll-interval", value, "--until-caught-up"],
                    ["dashboard", "--interval", value]):  # fmt: skip
        done = jsproj(*command)
        assert done.returncode == 2, (command, done.stderr)
        assert "seconds" in done.stderr and "Traceback" not in done.stderr, done.stderr
