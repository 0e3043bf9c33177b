"""The store commands (migrate, append, stream, live, db) run as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from clihelp import QUEST, jsproj
from jsproj import EventStore
from jsproj.config import project_file
from jsproj.errors import StoreUnavailableError
from jsproj.store.aio import AsyncEventStore
from jsproj.store.migrate import functions_files, migrations
from jsproj.tools.default_database import default_cluster, project_dir

from conformance_hosts import CASES, require_language

pytestmark = pytest.mark.slow  # the embedded PostgreSQL started and stopped by the CLI


def rows(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        return (
            conn.execute("select count(*) from pge_streams").fetchone()[0],
            conn.execute("select count(*) from pge_events").fetchone()[0],
        )


def test_append_stream_and_live_with_a_dsn(dsn: str) -> None:
    done = jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn, "--json")
    assert done.returncode == 0, done.stderr
    appended = json.loads(done.stdout)
    assert appended["events"] == 9
    assert appended["messages"][0] == {"streamId": "quest-1", "version": 2, "positions": [1, 2]}

    stream = json.loads(jsproj("stream", "quest-1", "--dsn", dsn, "--json").stdout)
    assert (stream["id"], stream["type"], stream["version"]) == ("quest-1", "Quest", 6)
    assert stream["events"][0]["event"]["$type"] == "QuestStarted"
    assert set(stream["events"][0]) == {"position", "version", "timestamp", "metadata", "event"}
    part = json.loads(jsproj("stream", "quest-1", "--dsn", dsn, "--json", "--from-version", "5").stdout)
    assert [e["version"] for e in part["events"]] == [5, 6]

    party = jsproj("live", "Party", "quest-1", "--projections", str(QUEST / "projections"), "--dsn", dsn, "--json")
    assert party.returncode == 0, party.stderr
    assert json.loads(party.stdout)["location"] == "The Eye of the World"
    early = jsproj(
        "live",
        "Party",
        "quest-1",
        "--at-version",
        "1",
        "--projections",
        str(QUEST / "projections"),
        "--dsn",
        dsn,
        "--json",
    )
    assert json.loads(early.stdout)["members"] == ["Rand", "Mat", "Perrin"]

    table = jsproj("stream", "quest-1", "--dsn", dsn)
    assert "quest-1: a Quest stream at version 6" in table.stdout


def test_events_reads_the_log_by_type_stream_type_and_metadata_in_pages(dsn: str) -> None:
    assert jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn).returncode == 0
    jsproj("append", "-", "--dsn", dsn, stdin='{"id": "shop-1", "type": "Shop", "metadata": {"user": "frodo"},'
           ' "data": {"$type": "TownReached", "location": "Bree"}}')  # fmt: skip

    def read(*args: str) -> dict:
        done = jsproj("events", "--dsn", dsn, "--json", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    towns = read("--type", "TownReached", "--type", "QuestEnded")
    assert [e["event"].get("location") for e in towns["events"]] == ["Baerlon", "Moria", "Moria", "The Eye of the World",
                                                                     "Bree"]  # fmt: skip
    first = read("--type", "TownReached", "--limit", "2")
    rest = read("--type", "TownReached", "--after", str(first["after"]))
    assert [e["position"] for e in first["events"] + rest["events"]] == [
        e["position"] for e in towns["events"] if e["event"]["$type"] == "TownReached"
    ]
    assert set(first["events"][0]) == {"position", "streamId", "streamType", "version", "timestamp", "appendedAt",
                                       "metadata", "event"}  # fmt: skip
    shop = read("--stream-type", "Shop", "--metadata", '{"user": "frodo"}', "--since", "2020-01-01T00:00:00Z")
    assert [(e["streamId"], e["metadata"]) for e in shop["events"]] == [("shop-1", {"user": "frodo"})]
    assert read("--type", "Nothing", "--after", "3") == {"events": [], "after": 3}

    table = jsproj("events", "--stream-type", "Shop", "--dsn", dsn)
    assert "1 event after position 0" in table.stdout and "Bree" in table.stdout
    for args, says in ((["--metadata", "[1]"], "--metadata must be a JSON object"),
                       (["--since", "tuesday"], "since must be an ISO 8601 date-time"),
                       (["--after", "999"], "there is no event at position 999")):  # fmt: skip
        done = jsproj("events", "--dsn", dsn, *args)
        assert done.returncode == 1 and says in done.stderr and done.stderr.count("\n") == 1, (args, done.stderr)


def test_archive_hides_a_stream_until_unarchive_and_says_what_it_did(dsn: str) -> None:
    assert jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn).returncode == 0
    archived = jsproj("archive", "quest-2", "--dsn", dsn, "--json")
    assert archived.returncode == 0, archived.stderr
    assert json.loads(archived.stdout)["changed"] is True and json.loads(archived.stdout)["archivedAt"]
    assert jsproj("archive", "quest-2", "--dsn", dsn).stdout == "already archived: quest-2\n"
    hidden = jsproj("stream", "quest-2", "--dsn", dsn)
    assert hidden.returncode == 1 and "stream 'quest-2' is archived" in hidden.stderr
    shown = jsproj("stream", "quest-2", "--include-archived", "--dsn", dsn, "--json")
    assert json.loads(shown.stdout)["archived"] is True
    refused = jsproj("append", "-", "--dsn", dsn, stdin='{"id": "quest-2", "data": {"$type": "QuestEnded"}}')
    assert refused.returncode == 1 and 'stream "quest-2" is archived: unarchive it' in refused.stderr
    events = json.loads(jsproj("events", "--dsn", dsn, "--json").stdout)["events"]
    assert {e["streamId"] for e in events} == {"quest-1"}
    assert jsproj("unarchive", "quest-2", "--dsn", dsn).stdout == "unarchived: quest-2\n"
    unknown = jsproj("unarchive", "nope", "--dsn", dsn)
    assert unknown.stderr == 'error: unarchiving a stream: there is no stream "nope"\n'


def test_erase_needs_yes_says_what_it_would_do_and_does_it(dsn: str) -> None:
    assert jsproj("deploy", "--projections", str(QUEST / "projections"), "--dsn", dsn).returncode == 0
    assert jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn).returncode == 0
    refused = jsproj("erase", "quest-2", "--reason", "request 7", "--dsn", dsn)
    assert refused.returncode == 1 and "pass --yes to erase" in refused.stderr
    dry = jsproj("erase", "quest-2", "--reason", "request 7", "--dry-run", "--dsn", dsn, "--json")
    assert json.loads(dry.stdout)["erasure"] is None and json.loads(dry.stdout)["events"] == 3
    assert "Moria" in jsproj("stream", "quest-2", "--dsn", dsn).stdout, "a dry run erases nothing"
    done = jsproj("erase", "quest-2", "--reason", "request 7", "--yes", "--dsn", dsn)
    assert done.returncode == 0 and done.stdout.startswith("erased 3 events (erasure 1); rebuilt: "), done.stdout
    assert "Moria" not in jsproj("stream", "quest-2", "--dsn", dsn, "--json").stdout
    assert jsproj("erase", "--reason", "r", "--yes", "--dsn", dsn).stderr.startswith("error: an erasure needs a stream")


def test_retention_rules_are_set_listed_applied_and_cleared(dsn: str) -> None:
    assert jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn).returncode == 0
    assert jsproj("retention", "set", "Quest", "--erase", "--max-count", "2", "--dsn", dsn).returncode == 0
    refused = jsproj("retention", "set", "Quest", "--archive", "--max-count", "2", "--dsn", dsn)
    assert refused.returncode == 1 and "an archive rule takes max_age only" in refused.stderr
    bad_age = jsproj("retention", "set", "Quest", "--archive", "--max-age", "a year", "--dsn", dsn)
    assert bad_age.returncode == 2 and "like 30d" in bad_age.stderr
    assert jsproj("retention", "set", "Quest", "--archive", "--max-age", "52w", "--dsn", dsn).returncode == 0
    assert jsproj("retention", "list", "--dsn", dsn).stdout == "Quest: archive (max age 52w)\n"
    assert jsproj("retention", "set", "Quest", "--erase", "--max-count", "2", "--dsn", dsn).returncode == 0
    applied = json.loads(jsproj("retention", "apply", "--dsn", dsn, "--json").stdout)
    assert applied == {"applied": [{"streamType": "Quest", "action": "erase", "streams": 0, "events": 5,
                                    "erasure": 1}]}  # fmt: skip
    assert jsproj("retention", "clear", "Quest", "--dsn", dsn).stdout == "cleared: Quest\n"
    assert json.loads(jsproj("retention", "list", "--dsn", dsn, "--json").stdout) == {"rules": []}


def test_delete_appends_the_tombstone_and_appends_after_it_need_the_expected_version(dsn: str) -> None:
    assert jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn).returncode == 0
    assert jsproj("delete", "quest-2", "--dsn", dsn).stdout == "deleted: quest-2 (its tombstone is version 4)\n"
    again = jsproj("delete", "quest-2", "--dsn", dsn, "--json")
    assert again.returncode == 1 and json.loads(again.stdout)["error"]["kind"] == "StreamDeletedError"
    late = jsproj("append", "-", "--dsn", dsn, stdin='{"id": "quest-2", "data": {"$type": "QuestEnded"}}')
    assert late.returncode == 1 and "append with expected_version 4 to re-create it" in late.stderr
    back = jsproj("append", "-", "--expected-version", "4", "--dsn", dsn,
                  stdin='{"id": "quest-2", "data": {"$type": "QuestStarted"}}')  # fmt: skip
    assert back.returncode == 0, back.stderr


def test_stream_upcast_shows_what_projections_see_beside_the_stored_events(dsn: str) -> None:
    folder = CASES / "upcasting" / "projections"
    assert jsproj("deploy", "--projections", str(folder), "--dsn", dsn).returncode == 0
    assert jsproj("append", str(CASES / "upcasting" / "events.jsonl"), "--dsn", dsn).returncode == 0
    done = jsproj("stream", "quest-1", "--upcast", "--dsn", dsn, "--json")  # the deployed upcasters
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout)["events"][0]
    assert (first["event"]["$type"], first["event"]["hero"]) == ("QuestBegun", "Rand"), "as stored"
    assert first["upcast"] == {
        "$type": "QuestStarted", "$id": first["event"]["$id"], "party": [{"name": "Rand", "role": "leader"}],
        "start": {"at": "2024-03-01T08:00:00.000Z", "town": "Emond's Field"}, "$version": 3,
    }  # fmt: skip
    table = jsproj("stream", "quest-2", "--upcast", "--projections", str(folder), "--dsn", dsn, env={"COLUMNS": "300"})
    assert table.returncode == 0, table.stderr
    assert "as projections see it" in table.stdout and '"party": [{"name": "Egwene"' in table.stdout
    alone = jsproj("stream", "quest-2", "--projections", str(folder), "--dsn", dsn)
    assert alone.returncode == 1 and "--projections goes with --upcast" in alone.stderr


def test_the_dsn_can_come_from_the_environment(dsn: str) -> None:
    done = jsproj(
        "append", "-", "--json", stdin='{"id": "e", "type": "T", "data": {"$type": "A"}}', env={"JSPROJ_DSN": dsn}
    )
    assert done.returncode == 0, done.stderr
    assert rows(dsn) == (1, 1)


def test_a_file_with_one_bad_message_writes_nothing(dsn: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"id": "a", "type": "T", "data": {"$type": "A"}}\n'
        '{"id": "b", "type": "T", "data": {"$type": "B"}}\n'
        '{"id": "c", "type": "T", "data": [{"$type": "C"}, {"oops": "no type"}]}\n'
    )
    done = jsproj("append", str(events), "--dsn", dsn, "--json")
    assert done.returncode == 1
    assert (
        done.stderr
        == 'error: message 3 (line 3): event 2: Missing $type in event: every event needs a "$type" string\n'
    )
    assert json.loads(done.stdout)["error"]["kind"] == "InvalidEventError"
    assert rows(dsn) == (0, 0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "type": "T", "data": {"$type": "A"}}\n{"id": oops}\n',
         "error: line 2, column 8: not valid JSON: Expecting value\n"),
        ('[{"id": "a", "type": "T", "data": {"$type": "A", "n": NaN}}]', "error: not valid JSON: NaN is not JSON"),
        ("[1, 2]", "error: message 1: an append message is an object"),
        ('{"id": "a", "type": "T", "data": {"$type": "A"}}\n{"id": "a", "expected_version": 0, "data": {"$type": "B"}}\n',
         'error: message 2 (line 2): stream "a" is at version 1, not the expected version 0'),
    ],
)  # fmt: skip
def test_bad_files_are_one_line_errors_and_write_nothing(dsn: str, tmp_path: Path, content: str, message: str) -> None:
    events = tmp_path / "events.json"
    events.write_text(content)
    done = jsproj("append", str(events), "--dsn", dsn)
    assert done.returncode == 1
    assert done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr
    assert rows(dsn) == (0, 0)
    with psycopg.connect(dsn) as conn:  # not even the position sequence moved
        assert conn.execute(
            "select pge_append(%s::jsonb)", ('{"id": "b", "type": "T", "data": {"$type": "A"}}',)
        ).fetchone()[0]["positions"] == [1]


def test_an_events_file_that_is_not_utf8_is_an_events_file_error_and_writes_nothing(dsn: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"id": "a", "type": "T", "data": {"$type": "A"}}\n{"id": "\xc3(", "data": {"$type": "A"}}\n')
    done = jsproj("append", str(events), "--dsn", dsn)
    assert done.returncode == 1
    assert done.stderr == f"error: {events}: line 2: not UTF-8 text (byte 57: b'\\xc3')\n"
    assert rows(dsn) == (0, 0)


def test_small_appends_read_in_the_singular_and_errors_in_user_words(dsn: str) -> None:
    one = jsproj("append", "-", "--dsn", dsn, stdin='{"id": "s", "type": "T", "data": {"$type": "A"}}')
    assert "appended 1 event in 1 message" in one.stdout
    unmigrated = jsproj("stream", "s", "--dsn", dsn, "--schema", "nothing_here")
    assert unmigrated.stderr.startswith("error: reading a stream: the store's schema is missing"), unmigrated.stderr
    view = jsproj("view", "Party", "--dsn", dsn, "--schema", "nothing_here")
    assert view.stderr.startswith("error: reading a view: the store's schema is missing"), view.stderr


def test_expected_version_option(dsn: str) -> None:
    one = '{"id": "s", "type": "T", "data": {"$type": "A"}}'
    assert jsproj("append", "-", "--dsn", dsn, "--expected-version", "0", stdin=one).returncode == 0
    again = jsproj("append", "-", "--dsn", dsn, "--expected-version", "0", stdin=one)
    assert again.returncode == 1
    assert again.stderr == 'error: message 1 (line 1): stream "s" is at version 1, not the expected version 0\n'
    two = jsproj("append", "-", "--dsn", dsn, "--expected-version", "1", stdin=one + "\n" + one)
    assert two.stderr == "error: --expected-version needs a file with one message; this one has 2\n"
    assert rows(dsn) == (1, 1)


def test_unknown_streams_projections_and_servers(dsn: str) -> None:
    assert jsproj("stream", "nope", "--dsn", dsn).stderr == "error: there is no stream 'nope'\n"
    jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn)
    live = jsproj("live", "Nope", "quest-1", "--projections", str(QUEST / "projections"), "--dsn", dsn)
    assert live.stderr == "error: there is no projection named 'Nope'\n"
    missing = jsproj("live", "Party", "quest-1", "--dsn", dsn)  # nothing deployed, no --projections
    assert missing.stderr == "error: no projections are deployed: run `jsproj deploy`, or give --projections DIR\n"
    down = jsproj("stream", "quest-1", "--dsn", "host=/nonexistent port=1 user=x dbname=x")
    assert down.returncode == 1
    assert down.stderr.startswith("error: cannot connect to PostgreSQL at")
    assert down.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "bad",
    [
        "postgresql://bob:SECRET@[::1/db",  # libpq quotes a URL it cannot parse
        "postgresql://bob:SECRET@localhost/db?bogus=1",
        "host=/nonexistent port=1 password=SECRET dbname=x user=bob",
        "host=/nonexistent password='SECRET",
    ],
)
def test_a_bad_dsn_never_prints_its_password(bad: str) -> None:
    done = jsproj("stream", "quest-1", "--dsn", bad, "--json")
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot connect to PostgreSQL at"), done.stderr
    assert "SECRET" not in done.stderr + done.stdout
    with pytest.raises(StoreUnavailableError) as raised:
        EventStore(bad)
    assert "SECRET" not in str(raised.value)
    with pytest.raises(StoreUnavailableError) as raised:
        asyncio.run(AsyncEventStore.open(bad))
    assert "SECRET" not in str(raised.value)


def test_migrate_reports_what_it_did(dsn: str) -> None:
    done = jsproj("migrate", "--dsn", dsn, "--schema", "other", "--json")
    assert json.loads(done.stdout) == {
        "schema": "other",
        "applied": [m.label for m in migrations()],
        "functions": [f.name for f in functions_files()],
    }
    assert jsproj("migrate", "--dsn", dsn, "--schema", "other").stdout == "schema other is up to date\n"
    bad = jsproj("migrate", "--dsn", dsn, "--schema", "no-dashes")
    assert bad.returncode == 1
    assert "is not a safe identifier" in bad.stderr


def test_bad_settings_are_refused_before_any_database_is_created(tmp_path: Path) -> None:
    deploy = ["deploy", "--projections", str(QUEST / "projections")]
    for args, env, message in [
        (deploy, {"JSPROJ_ENGINE": "bogus"}, "error: the engine is one of python, plpython, plv8, pljs, not 'bogus'"),
        ([*deploy, "--lifecycle", "Party=sometimes"], {}, "Usage: jsproj deploy"),  # a usage error: exit 2
        ([*deploy, "--schema", "no-dashes"], {}, "error: schema name"),
        (["migrate"], {"JSPROJ_SCHEMA": "no-dashes"}, "error: schema name"),
        (["append", "-"], {"JSPROJ_SCHEMA": "no-dashes"}, "error: schema name"),
    ]:
        done = jsproj(*args, cwd=tmp_path, env=env, stdin='{"id": "s", "type": "T", "data": {"$type": "A"}}')
        assert done.returncode in (1, 2) and done.stderr.startswith(message), (args, done.stderr)
        assert not (tmp_path / ".jsproj").exists(), args


def test_read_only_commands_never_create_the_embedded_database(tmp_path: Path) -> None:
    live = ["live", "Party", "quest-1", "--projections", str(QUEST / "projections")]
    for args in (["view", "Party"], ["stream", "quest-1"], ["events"], ["status"], ["export"], ["dead-letters"], live):
        done = jsproj(*args, cwd=tmp_path)
        assert done.returncode == 1
        assert done.stderr == (
            f"error: no database here: run `jsproj db start` or pass --dsn (no embedded database in {tmp_path})\n"
        ), args
        assert not (tmp_path / ".jsproj").exists(), args


@pytest.fixture
def project() -> Iterator[Path]:
    """A project folder that the server's OS user can reach, cleaned up with its database."""
    folder = Path(tempfile.mkdtemp(prefix="jsproj-project-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        jsproj("db", "stop", cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.server
def test_the_embedded_database_lifecycle(project: Path) -> None:
    status = json.loads(jsproj("db", "status", "--json", cwd=project).stdout)
    assert (status["running"], status["initialised"]) == (False, False)
    assert status["dataDir"] == str(project / ".jsproj" / "pgdata")
    started = jsproj("db", "start", "--json", cwd=project)
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    assert info["running"] and info["pid"] and info["started"]
    assert started.stderr == "", "db start's own output says where: the URL once"
    announced = f"jsproj: started the embedded database of {project} ({info['url']})\n"
    assert jsproj("db", "url", cwd=project).stdout.strip() == info["url"]
    with psycopg.connect(info["url"]) as conn:
        assert conn.execute("select count(*) from pge_migrations").fetchone()[0] >= 1
    again = jsproj("db", "start", cwd=project)
    assert (again.returncode, again.stderr) == (0, ""), "starting twice is fine"
    assert again.stdout.startswith("PostgreSQL already running") and again.stdout.count(info["url"]) == 1
    assert jsproj("db", "stop", cwd=project).stdout == "PostgreSQL is stopped\n"
    assert json.loads(jsproj("db", "status", "--json", cwd=project).stdout)["running"] is False
    # Commands without --dsn start it again when needed, and say so.
    appended = jsproj("append", "-", "--json", cwd=project, stdin='{"id": "s", "type": "T", "data": {"$type": "A"}}')
    assert appended.returncode == 0, appended.stderr
    assert (json.loads(appended.stdout)["events"], appended.stderr) == (1, announced)
    assert jsproj("db", "status", cwd=project).stdout.startswith("running")
    read = jsproj("stream", "s", "--json", cwd=project)
    assert (json.loads(read.stdout)["version"], read.stderr) == (1, ""), "already running: nothing said"


PROGRAM = """
import jsproj
store = jsproj.connect()
store.append({"id": "s", "type": "T", "data": {"$type": "A"}})
print(store.fetch_stream("s").version)
"""


def run_program(folder: Path) -> subprocess.CompletedProcess[str]:
    """A Python program calling jsproj.connect() with no DSN anywhere, in ``folder``."""
    env = {k: v for k, v in os.environ.items() if k not in ("JSPROJ_DSN", "JSPROJ_SCHEMA")}
    return subprocess.run([sys.executable, "-c", PROGRAM], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.mark.server
def test_a_program_says_where_it_started_the_database_and_the_last_one_out_stops_it(project: Path) -> None:
    first = run_program(project)
    assert (first.returncode, first.stdout) == (0, "1\n"), first.stderr
    said = first.stderr.strip()
    assert said.startswith(f"started the embedded PostgreSQL of {project} (no jsproj.toml here or above"), said
    assert f"data in {project / '.jsproj' / 'pgdata'}" in said and "set JSPROJ_DSN" in said
    assert not default_cluster(project).is_running(), "no server left behind by a script"
    assert (project / ".jsproj" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert not list((project / ".jsproj" / "users").iterdir())
    # Started by the CLI, the server is the CLI's: a program's exit leaves it running until `jsproj db stop`.
    assert jsproj("db", "start", cwd=project).returncode == 0
    second = run_program(project)
    assert (second.returncode, second.stdout, second.stderr) == (0, "2\n", ""), "already running: nothing said"
    assert default_cluster(project).is_running()


def test_the_project_is_the_nearest_jsproj_toml_else_the_current_folder_never_a_parents_database(
    tmp_path: Path,
) -> None:
    checkout = tmp_path / "checkout"
    copied = checkout / "my-quest" / "projections"
    copied.mkdir(parents=True)
    (checkout / ".jsproj" / "pgdata").mkdir(parents=True)  # what `make demo` leaves in a checkout
    assert project_dir(copied.parent) == copied.parent, "a parent's .jsproj/ alone is another project's"
    assert project_dir(copied) == copied
    assert default_cluster(copied.parent).socket_dir != default_cluster(checkout).socket_dir
    (checkout / "jsproj.toml").write_text('[jsproj]\nschema = "mine"\n')
    assert project_dir(copied) == checkout, "jsproj.toml is still found upwards"
    assert project_file(copied).get("schema") == "mine"


@pytest.mark.server
def test_a_folder_under_a_project_with_a_database_gets_its_own(project: Path) -> None:
    assert jsproj("db", "start", cwd=project).returncode == 0
    child = project / "my-quest"
    shutil.copytree(QUEST, child)
    status = json.loads(jsproj("db", "status", "--json", cwd=child).stdout)
    assert (status["running"], status["initialised"]) == (False, False)
    assert status["dataDir"] == str(child / ".jsproj" / "pgdata")
    read = jsproj("stream", "quest-1", cwd=child)
    assert read.returncode == 1 and read.stderr.startswith("error: no database here"), read.stderr
    assert json.loads(jsproj("db", "status", "--json", cwd=project).stdout)["running"] is True


@pytest.mark.server
def test_db_list_shows_every_embedded_database_and_stop_all_stops_them(project: Path, tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}  # this test's registry, not the user's
    other = project / "other"  # a folder under a project with a database: a project of its own
    other.mkdir()
    gone = project / "removed"
    gone.mkdir()
    try:
        assert json.loads(jsproj("db", "list", "--json", env=env).stdout) == {"databases": []}
        for folder in (project, other, gone):
            assert jsproj("db", "start", cwd=folder, env=env).returncode == 0
        jsproj("db", "stop", cwd=gone, env=env)
        shutil.rmtree(gone)
        listed = json.loads(jsproj("db", "list", "--json", env=env).stdout)["databases"]
        assert [(d["project"], d["running"], d["dataDir"]) for d in listed] == [
            (str(project), True, str(default_cluster(project).data_dir)),
            (str(other), True, str(default_cluster(other).data_dir)),
        ], "a removed folder is pruned from the list"
        assert len(list((tmp_path / "state" / "jsproj" / "databases").iterdir())) == 2
        assert all(d["pid"] and d["url"].startswith("postgresql://") for d in listed)
        text = jsproj("db", "list", env=env).stdout
        assert f"{project}: running (pid {listed[0]['pid']})" in text and f"{other}: running" in text
        stopped = json.loads(jsproj("db", "stop", "--all", "--json", env=env).stdout)["stopped"]
        assert sorted(d["project"] for d in stopped) == [str(project), str(other)]
        after = json.loads(jsproj("db", "list", "--json", env=env).stdout)["databases"]
        assert [(d["running"], d["pid"]) for d in after] == [(False, None), (False, None)]
        assert jsproj("db", "stop", "--all", env=env).stdout == "no embedded database was running\n"
    finally:
        jsproj("db", "stop", cwd=other, env=env)
        if gone.exists():
            jsproj("db", "stop", cwd=gone, env=env)


@pytest.mark.server
@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another OS user")
def test_as_root_a_project_the_server_cannot_reach_keeps_its_data_under_var_lib() -> None:
    private = Path(tempfile.mkdtemp(prefix="jsproj-private-"))  # 0700: postgres cannot enter
    try:
        status = json.loads(jsproj("db", "start", "--json", cwd=private).stdout)
        assert status["running"]
        assert status["dataDir"].startswith("/var/lib/jsproj/")
    finally:
        jsproj("db", "stop", cwd=private)
        data = json.loads(jsproj("db", "status", "--json", cwd=private).stdout)["dataDir"]
        shutil.rmtree(Path(data).parent, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.server
def test_the_embedded_database_says_why_it_cannot_start(project: Path, tmp_path: Path) -> None:
    no_server = jsproj("db", "start", cwd=project, env={"JSPROJ_PG_BIN": str(tmp_path)})
    assert no_server.returncode == 1
    assert (
        no_server.stderr
        == f"error: PostgreSQL server programs (initdb, pg_ctl) not found in JSPROJ_PG_BIN={tmp_path}\n"
    )
    assert jsproj("db", "start", cwd=project).returncode == 0
    assert jsproj("db", "stop", cwd=project).returncode == 0
    with open(project / ".jsproj" / "pgdata" / "postgresql.auto.conf", "a") as conf:
        conf.write("shared_buffers = 'lots'\n")
    broken = jsproj("db", "start", cwd=project)
    assert broken.returncode == 1
    assert broken.stderr.startswith("error: PostgreSQL did not start:")
    assert "shared_buffers" in broken.stderr


@pytest.mark.server
def test_a_socket_folder_someone_else_made_first_is_refused_and_left_alone(project: Path, tmp_path: Path) -> None:
    socket_dir = default_cluster(project).socket_dir
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    before = os.stat(victim)
    socket_dir.symlink_to(victim)  # what a local user can do before jsproj first runs
    try:
        done = jsproj("db", "start", cwd=project)
        assert done.returncode == 1
        assert done.stderr == (
            f"error: the socket folder {socket_dir} exists and is not safe to use (it is a symlink or not a folder): "
            "another user may have made it; remove it and start again\n"
        )
        after = os.stat(victim)
        assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
        assert socket_dir.is_symlink(), "left as it was"
    finally:
        socket_dir.unlink()
    socket_dir.mkdir(mode=0o755)  # a real folder, but open to others (and, as root, not the server user's)
    os.chmod(socket_dir, 0o755)
    try:
        loose = jsproj("db", "start", cwd=project)
        assert loose.returncode == 1
        assert f"error: the socket folder {socket_dir} exists and is not safe to use (" in loose.stderr
        assert os.lstat(socket_dir).st_mode & 0o777 == 0o755, "left as it was"
    finally:
        socket_dir.rmdir()
    assert jsproj("db", "start", cwd=project).returncode == 0
    assert (os.lstat(socket_dir).st_mode & 0o777, socket_dir.is_symlink()) == (0o700, False)


def test_deploy_view_export_and_live_from_the_database(dsn: str, tmp_path: Path) -> None:
    done = jsproj("deploy", "--projections", str(QUEST / "projections"), "--dsn", dsn, "--json",
                  "--lifecycle", "Traveled=inline", "--lifecycle", "Visitors=inline")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["added"] == ["Arrival", "Journal", "Party", "Traveled", "Visitors"]
    assert jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn).returncode == 0

    assert json.loads(jsproj("view", "Party", "quest-2", "--dsn", dsn, "--json").stdout)["location"] == "Moria"
    assert list(json.loads(jsproj("view", "Visitors", "--dsn", dsn, "--json", "--limit", "1").stdout)) == ["Baerlon"]
    assert json.loads(jsproj("view", "Traveled", "--dsn", dsn, "--json").stdout) == {
        "Traveled": {"traveled": 372, "days": 2}
    }
    assert "Party (2 documents)" in jsproj("view", "Party", "--dsn", dsn).stdout
    journal = jsproj("view", "Journal", "--dsn", dsn)
    assert journal.stderr.startswith("error: Journal is a live projection")
    assert (
        jsproj("view", "Party", "quest-9", "--dsn", dsn).stderr == "error: projection Party has no document 'quest-9'\n"
    )

    exported = json.loads(jsproj("export", "--dsn", dsn, "--json").stdout)
    simulated = json.loads(jsproj("simulate", str(QUEST / "projections"), str(QUEST / "events.jsonl"), "--json").stdout)
    assert exported["views"]["Party"] == simulated["views"]["Party"]
    assert exported["views"]["Visitors"] == simulated["views"]["Visitors"]
    assert exported["aggregates"] == simulated["aggregates"]
    assert "Journal" not in exported["views"], "live projections store nothing"

    live = jsproj("live", "Journal", "quest-2", "--dsn", dsn, "--json")  # definitions from the database
    assert json.loads(live.stdout) == simulated["views"]["Journal"]["quest-2"]

    again = json.loads(jsproj("deploy", "--projections", str(QUEST / "projections"), "--dsn", dsn, "--json",
                              "--lifecycle", "Traveled=inline", "--lifecycle", "Visitors=inline").stdout)  # fmt: skip
    assert again["unchanged"] == report["added"] and again["rebuilt"] == {}


def test_unknown_projection_names_are_errors_with_the_closest_name(dsn: str) -> None:
    assert jsproj("deploy", "--projections", str(QUEST / "projections"), "--dsn", dsn).returncode == 0
    assert jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn).returncode == 0
    meant = {
        ("view", "party"): "error: there is no deployed projection 'party' (did you mean 'Party'?)\n",
        ("view", "Partyy", "quest-1"): "error: there is no deployed projection 'Partyy' (did you mean 'Party'?)\n",
        ("retry", "Visitor"): "error: there is no deployed projection 'Visitor' (did you mean 'Visitors'?)\n",
        ("rebuild", "traveled"): "error: there is no deployed projection 'traveled' (did you mean 'Traveled'?)\n",
        ("dead-letters", "--projection", "Nope"): "error: there is no deployed projection 'Nope'\n",
        ("daemon", "--projection", "Arival", "--until-caught-up"):
            "error: there is no deployed projection 'Arival' (did you mean 'Arrival'?)\n",
        ("live", "journal", "quest-1"): "error: there is no projection named 'journal' (did you mean 'Journal'?)\n",
    }  # fmt: skip
    for args, message in meant.items():
        done = jsproj(*args, "--dsn", dsn)
        assert (done.returncode, done.stderr) == (1, message), args
    refused = jsproj("retry", "Nope", "--dsn", dsn, "--json")
    assert json.loads(refused.stdout)["error"] == {
        "kind": "UnknownProjectionError",
        "message": "there is no deployed projection 'Nope'",
        "projection": "Nope",
    }


def test_deploy_errors_are_one_line(dsn: str, tmp_path: Path) -> None:
    (tmp_path / "Bad.js").write_text("projections.aggregate('no-dashes').by({});")
    bad = jsproj("deploy", "--projections", str(tmp_path), "--dsn", dsn)
    assert bad.returncode == 1
    assert bad.stderr.startswith('error: Bad.js: projection name "no-dashes" is not a safe identifier')
    wrong = jsproj(
        "deploy", "--projections", str(QUEST / "projections"), "--dsn", dsn, "--lifecycle", "Party=sometimes"
    )
    assert wrong.returncode == 2, "a usage mistake exits as click's own do"
    assert wrong.stderr.endswith("Error: Invalid value for '--lifecycle': --lifecycle takes NAME=inline|async|live, "
                                 "not 'Party=sometimes'\n")  # fmt: skip
    for option, value in (("--on-error", "Party=maybe"), ("--partitions", "Party=0")):
        done = jsproj("deploy", "--projections", str(QUEST / "projections"), "--dsn", dsn, option, value)
        assert done.returncode == 2 and f"Invalid value for '{option}': {option} takes NAME=" in done.stderr


def test_sql_prints_a_deployment_for_a_dba() -> None:
    done = jsproj("sql", "--engine", "plpython", "--projections", str(QUEST / "projections"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("-- jsproj deployment: 5 projections, engine plpython, schema public")
    assert "language plpython3u" in done.stdout and "pge_deploy(" in done.stdout
    assert jsproj("sql", "--projections", str(QUEST / "projections")).returncode == 2, "--engine is required"


def test_sql_takes_the_policies_deploy_takes_and_its_script_deploys_them(dsn: str) -> None:
    """--on-error, --partitions and --emit, as `jsproj deploy` takes them (the script lacked them: a DBA's
    deployment could not let a projection emit, nor dead-letter, nor split it)."""
    policies = ("--lifecycle", "Party=async", "--on-error", "Party=dead-letter", "--partitions", "Party=2",
                "--emit", "Party")  # fmt: skip
    script = jsproj("sql", "--engine", "plpython", "--projections", str(QUEST / "projections"), *policies)
    assert script.returncode == 0, script.stderr
    with psycopg.connect(dsn) as owner:  # applied in one transaction, as the DBA's psql -1 does
        owner.execute(script.stdout.encode())
        row = owner.execute("select lifecycle, on_error, partitions, emits from pge_projection_definitions "
                            "where name = 'Party'").fetchone()  # fmt: skip
    assert row == ("async", "dead-letter", 2, True)
    inline = jsproj("sql", "--engine", "plpython", "--projections", str(QUEST / "projections"), "--emit", "Party")
    assert inline.returncode == 1 and "--emit Party: only async projections write events" in inline.stderr
    unknown = jsproj("sql", "--engine", "plpython", "--projections", str(QUEST / "projections"), "--emit", "Nope")
    assert unknown.returncode == 1 and "--emit names projections that are not defined: Nope" in unknown.stderr


def test_sql_takes_the_schema_from_the_flag_the_environment_and_jsproj_toml(tmp_path: Path) -> None:
    (tmp_path / "jsproj.toml").write_text(
        '[jsproj]\nschema = "from_toml"\nprojections = "%s"\n' % (QUEST / "projections")
    )
    first = "-- jsproj deployment: 5 projections, engine plpython, schema {}"
    assert jsproj("sql", "--engine", "plpython", cwd=tmp_path).stdout.startswith(first.format("from_toml"))
    from_env = jsproj("sql", "--engine", "plpython", cwd=tmp_path, env={"JSPROJ_SCHEMA": "from_env"})
    assert from_env.stdout.startswith(first.format("from_env"))
    flag = jsproj("sql", "--engine", "plpython", "--schema", "flag", cwd=tmp_path, env={"JSPROJ_SCHEMA": "from_env"})
    assert flag.stdout.startswith(first.format("flag"))
    assert 'set local search_path = "flag";' in flag.stdout


@pytest.mark.parametrize("engine", ["plv8", "pljs"])
def test_deploy_and_sql_take_the_javascript_languages(cluster, dsn: str, engine: str) -> None:
    require_language(cluster.dsn, engine)
    script = jsproj("sql", "--engine", engine, "--projections", str(QUEST / "projections"))
    assert script.returncode == 0, script.stderr
    assert f"language {engine}" in script.stdout and f"create extension if not exists {engine};" in script.stdout
    done = jsproj("deploy", "--dsn", dsn, "--engine", engine, "--projections", str(QUEST / "projections"), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["engine"] == engine
    appended = jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn)
    assert appended.returncode == 0, appended.stderr
    party = jsproj("view", "Party", "quest-1", "--dsn", dsn, "--json")
    assert party.returncode == 0 and json.loads(party.stdout)["location"], party.stderr


def test_a_large_file_is_appended_whole_with_a_short_summary(dsn: str, tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"s{n}", "type": "T", "data": [{"$type": "A", "n": k} for k in range(30)]})
             for n in range(50)]  # fmt: skip
    (tmp_path / "big.jsonl").write_text("\n".join(lines))
    done = jsproj("append", str(tmp_path / "big.jsonl"), "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert "appended 1500 events in 50 messages" in done.stdout
    assert "... 30 more messages" in done.stdout
    assert rows(dsn) == (50, 1500)


def keys_of(value: object) -> set[str]:
    """Every key of a JSON document, at any depth."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def test_json_keys_are_camel_case_and_view_shapes_follow_the_arguments_only(dsn: str) -> None:
    deployed = jsproj("deploy", "--projections", str(QUEST / "projections"), "--dsn", dsn, "--json",
                      "--lifecycle", "Traveled=inline")  # fmt: skip
    appended = jsproj("append", str(QUEST / "events.jsonl"), "--dsn", dsn, "--json")
    status = jsproj("status", "--dsn", dsn, "--json")
    letters = jsproj("dead-letters", "--dsn", dsn, "--json")
    for done in (deployed, appended, status, letters):
        assert done.returncode == 0, done.stderr
        snake = sorted(k for k in keys_of(json.loads(done.stdout)) if "_" in k)
        assert snake == [], (done.args[0], snake)
    assert set(json.loads(status.stdout)[0]) == {"name", "kind", "lifecycle", "engine", "status", "position",
        "highWater", "lagEvents", "lagSeconds", "deadLetters", "holder", "error", "partitions", "version", "pending"}  # fmt: skip

    def view(*args: str) -> object:
        done = jsproj("view", *args, "--dsn", dsn, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    document = view("Traveled", "Traveled")  # NAME ID: the document itself, whatever the kind
    assert document == {"traveled": 372, "days": 2}
    assert view("Traveled") == {"Traveled": document}, "NAME alone: a page {id: document}, an aggregate's too"
    page = view("Party")
    assert isinstance(page, dict) and view("Party", "quest-1") == page["quest-1"]
    assert "NAME ID prints the document itself" in " ".join(jsproj("view", "--help").stdout.split())
