"""The REPL: driven through a pseudo-terminal like a user types, and its sessions directly."""

from __future__ import annotations

import io
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import pexpect
import pytest
from rich.console import Console

from clihelp import JSPROJ, QUEST
from jsproj.tools.cli.repl import history_file
from jsproj.tools.repl import MemorySession, StoreSession

START = '{"id": "quest-1", "type": "Quest", "data": {"$type": "QuestStarted", "location": "Bree", "members": ["Rand"]}}'
WALK = '{"id": "quest-1", "data": {"$type": "TownReached", "location": "Moria", "traveled": 40}}'


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(QUEST / "projections", tmp_path / "projections")
    return tmp_path / "projections"


def start(*args: str, home: Path) -> pexpect.spawn:
    """The REPL in a pseudo-terminal, up to its banner (``before``: what it printed first)."""
    child = pexpect.spawn(
        str(JSPROJ), ["repl", *args], env={"HOME": str(home), "TERM": "xterm", "PATH": "/usr/bin:/bin", "PROMPT_TOOLKIT_NO_CPR": "1"},
        encoding="utf-8", timeout=60, dimensions=(40, 250),
    )  # fmt: skip
    child.expect("events in memory")
    return child


def spawn(*args: str, home: Path) -> pexpect.spawn:
    """The REPL in a pseudo-terminal, at its first prompt."""
    child = start(*args, home=home)
    child.expect("jsproj>")
    return child


def leave(child: pexpect.spawn) -> None:
    """End a session with .exit, and check it ended well."""
    child.sendline(".exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_the_repl_appends_views_reloads_a_changed_projection_and_exits(folder: Path, tmp_path: Path) -> None:
    child = spawn(str(folder), home=tmp_path)
    child.sendline(f"append {START}")
    child.expect_exact("appended 1 event: quest-1 is at version 1")
    child.expect_exact(
        'quest-1: {"active": true, "members": ["Rand"], "location": "Bree", "traveled": 0}'
    )  # jsonb's key order
    child.expect("jsproj>")
    child.sendline(f"append {WALK}")
    child.expect_exact('Moria: {"quests": ["quest-1"], "visits": 1}')
    child.expect("jsproj>")
    child.sendline("view Party quest-1")
    child.expect_exact('"traveled": 40')
    child.expect("jsproj>")
    party = folder / "Party.js"
    changed = party.read_text().replace("state.traveled += evt.traveled;\n    },\n    EndOfDay",
                                        "state.traveled += 2 * evt.traveled;\n    },\n    EndOfDay")  # fmt: skip
    assert changed != party.read_text()
    party.write_text(changed)
    future = time.time() + 5  # a different mtime even on coarse file systems
    os.utime(party, (future, future))
    child.sendline("view Party quest-1")
    child.expect("projection files changed, reloading")
    child.expect_exact('"traveled": 80')  # the log was replayed through the new code
    child.expect("jsproj>")
    child.sendline("[1, 2, 3].map(function (x) { return x * x; })")
    child.expect(r"9\s*\]")
    child.expect("jsproj>")
    leave(child)
    assert "view Party quest-1" in (tmp_path / ".local" / "state" / "jsproj" / "repl_history").read_text()
    assert not (tmp_path / ".jsproj_history").exists(), "nothing in the home folder itself"


def test_the_history_of_the_old_file_in_home_moves_to_the_state_folder_once(folder: Path, tmp_path: Path) -> None:
    old, new = tmp_path / ".jsproj_history", tmp_path / ".local" / "state" / "jsproj" / "repl_history"
    old.write_text("\n# 2024-01-01 10:00:00.000000\n+40 + 2\n", "utf-8")  # prompt_toolkit's format
    child = start(str(folder), home=tmp_path)
    assert f"history moved from {old} to {new}" in child.before
    child.expect("jsproj>")
    child.send("\x1b[A")  # up: the last line of the old history
    child.expect(rendered("40 + 2"))
    child.send("\r")
    child.expect(r"(?<![0-9])42\r\n")
    child.expect("jsproj>")
    leave(child)
    assert not old.exists()
    assert re.findall(r"^\+(.*)$", new.read_text("utf-8"), re.M) == ["40 + 2", ".exit"]
    old.write_text("\n# 2024-01-01 10:00:00.000000\n+not moved again\n", "utf-8")
    child = start(str(folder), home=tmp_path)
    assert "history moved" not in child.before, "the new file exists: the old one stays where it is"
    child.expect("jsproj>")
    leave(child)
    assert "not moved again" not in new.read_text("utf-8") and old.exists()


def test_the_history_is_in_xdg_state_home_when_it_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("JSPROJ_HISTORY", raising=False)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".jsproj_history").write_text("+old\n", "utf-8")
    assert history_file() == (tmp_path / "state" / "jsproj" / "repl_history", tmp_path / "home" / ".jsproj_history")
    assert (tmp_path / "state" / "jsproj" / "repl_history").read_text("utf-8") == "+old\n"
    assert sorted(p.name for p in (tmp_path / "state" / "jsproj").iterdir()) == ["repl_history"], "no copy left"
    monkeypatch.setenv("JSPROJ_HISTORY", str(tmp_path / "named"))
    assert history_file() == (tmp_path / "named", None)


def test_a_mistyped_command_is_named_in_the_terminal_not_run_as_javascript(folder: Path, tmp_path: Path) -> None:
    child = spawn(str(folder), home=tmp_path)
    child.sendline("apend {}")
    child.expect_exact("unknown command 'apend': did you mean 'append'?")
    child.expect("jsproj>")
    assert "SyntaxError" not in child.before
    child.sendline("veiw(2); function veiw(x) { return x * 10; }")  # a name close to `view`, in JavaScript
    child.expect(r"(?<![0-9])20\r\n")
    child.expect("jsproj>")
    leave(child)


ESCAPES = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"


def rendered(word: str) -> str:
    """A pattern of ``word`` as a terminal may draw it: in one piece, or in several with escape sequences
    between them (a busy machine's prompt_toolkit draws what it has, then the rest)."""
    return ESCAPES.join(re.escape(letter) for letter in word)


def test_the_repl_completes_commands_and_projection_names(folder: Path, tmp_path: Path) -> None:
    child = spawn(str(folder), home=tmp_path)
    child.send("vi\t")
    child.expect(rendered("view"))
    child.send(" Par\t")
    child.expect(rendered("Party"))
    child.send("\r")
    child.expect_exact("(0")  # the empty Party table (its title wraps: "Party (0 documents)")
    child.expect("jsproj>")
    child.sendeof()
    child.expect(pexpect.EOF)


def session(folder: Path) -> tuple[MemorySession, io.StringIO]:
    out = io.StringIO()
    return MemorySession(folder, Console(file=out, width=200, highlight=False), timeout=1), out


def test_a_line_shaped_like_a_command_close_to_one_is_not_evaluated(folder: Path) -> None:
    repl, out = session(folder)
    try:
        for line in (f"apend {START}", "vew Party quest-1", ".relaod", ".nope", "hlep me"):
            repl.handle(line)
        assert out.getvalue().splitlines() == [
            "error: unknown command 'apend': did you mean 'append'?",
            "error: unknown command 'vew': did you mean 'view'?",
            "error: unknown command '.relaod': did you mean '.reload'?",
            "error: unknown command '.nope': .help lists the commands",
            "error: unknown command 'hlep': did you mean '.help'?",
        ]
        assert repl.records == []
    finally:
        repl.close()


def test_javascript_that_begins_like_a_command_still_runs(folder: Path) -> None:
    repl, out = session(folder)
    try:
        for line in (
            "veiw(2); function veiw(x) { return x * 10; }",  # a name close to `view`, then `(`
            "try { 'tried' } finally {}",  # a keyword close to `.retry`
            "typeof apend",
            ".5 + 1",  # a number, not a dotted command
            "foo bar",  # far from every command: JavaScript says what is wrong
        ):
            repl.handle(line)
        assert out.getvalue().splitlines() == [
            "20",
            '"tried"',
            '"undefined"',
            "1.5",
            "error: SyntaxError: Unexpected identifier 'bar'",
        ]
    finally:
        repl.close()


def test_undo_and_reset_replay_the_log(folder: Path) -> None:
    repl, out = session(folder)
    try:
        repl.handle(f"append {START}")
        repl.handle(f"append {WALK}")
        assert repl.documents["Party"]["quest-1"]["location"] == "Moria"
        repl.handle(".undo")
        assert repl.documents["Party"]["quest-1"]["location"] == "Bree"
        assert "Moria" not in repl.documents["Visitors"]
        repl.handle(".reset")
        assert repl.documents["Party"] == {} and repl.records == []
        repl.handle(".undo")
        assert "error: there is nothing to undo" in out.getvalue()
    finally:
        repl.close()


def test_the_ids_a_memory_session_gives_are_time_ordered_like_a_stores(folder: Path) -> None:
    repl, _ = session(folder)
    try:
        repl.handle(f"append {START}")
        repl.handle('append {"id": "quest-1", "data": [{"$type": "A"}, {"$type": "B"}, {"$type": "C"}]}')
        made = [uuid.UUID(record["event"]["$id"]) for record in repl.records]
        assert all((i.version, i.variant) == (7, uuid.RFC_4122) for i in made)
        assert len(made) == 4 and made == sorted(made) and len(set(made)) == 4
        assert abs((made[0].int >> 80) - time.time() * 1000) < 60_000, "the first 48 bits: the time in ms"
    finally:
        repl.close()


def test_an_append_a_projection_refuses_changes_nothing(folder: Path) -> None:
    (folder / "Strict.js").write_text(
        "projections.aggregate('Strict').by({ TownReached: function (s, e) {"
        " if (e.location === 'Moria') throw new Error('not Moria'); } });"
    )
    repl, out = session(folder)
    try:
        repl.handle(f"append {START}")
        before = {name: dict(docs) for name, docs in repl.documents.items()}
        repl.handle(f"append {WALK}")
        assert "error: " in out.getvalue() and "not Moria" in out.getvalue()
        assert repl.documents == before and len(repl.records) == 1
        repl.handle("append {not json")
        repl.handle("view Nope")
        repl.handle("view Party nobody")
        text = out.getvalue()
        assert "the message is not JSON" in text
        assert "there is no projection named 'Nope'" in text
        assert "Party has no document 'nobody'" in text
        assert repl.handle(".exit") is False
    finally:
        repl.close()


@pytest.mark.slow
def test_javascript_runs_in_the_sandbox_without_host_objects(folder: Path) -> None:
    repl, out = session(folder)
    try:
        repl.handle("typeof require + ',' + typeof process + ',' + typeof fetch")
        repl.handle("projections.aggregate('Scratch').by({ A: function () {} }); 'defined'")
        repl.handle("while (true) {}")
        repl.handle("1 + 1")
        text = out.getvalue()
        assert '"function,undefined,undefined"' in text  # require is the DSL's own, nothing of Node or Python
        assert '"defined"' in text
        assert "ran past the time limit" in text
        assert text.rstrip().endswith("2")  # the session survives a runaway loop
        assert "Scratch" not in repl.names  # scratch definitions do not join the loaded projections
    finally:
        repl.close()


def test_a_store_session_appends_to_postgres_and_refuses_undo(folder: Path, dsn: str) -> None:
    out = io.StringIO()
    repl = StoreSession(folder, Console(file=out, width=200, highlight=False), dsn, "public")
    try:
        assert "deployed to public" in out.getvalue()
        repl.handle(f"append {START}")
        repl.handle(f"append {WALK}")
        repl.handle("view Traveled")
        repl.handle("view Journal quest-1")
        repl.handle(".undo")
        text = out.getvalue()
        assert 'Party quest-1: {"active": true' in text
        assert 'Visitors Moria: {"quests": ["quest-1"], "visits": 1}' in text  # async: the daemon ran (jsonb key order)
        assert '"traveled": 40' in text
        assert "2. TownReached at Moria" in text  # live: folded from the store
        assert "a store's events are never removed" in text
    finally:
        repl.close()
