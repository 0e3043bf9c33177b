"""Every daemon option from a flag, else its JSPROJ_* variable, else jsproj.toml's [jsproj.daemon], else its
default; the settings a daemon runs with are in its first log line."""

from __future__ import annotations

from pathlib import Path

from clihelp import jsproj
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore

ASYNC = [
    {
        "file": f"{name}.js",
        "source": f"projections.aggregate('{name}').by({{ A: function (s) {{ s.n = 1; }} }}).async();",
    }
    for name in ("Totals", "Other")
]


def started(project: Path, dsn: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = jsproj("daemon", "--until-caught-up", "--dsn", dsn, *args, cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    return next(line for line in done.stderr.splitlines() if " started (" in line)


def test_flags_then_variables_then_jsproj_toml_then_defaults(store: EventStore, dsn: str, tmp_path: Path) -> None:
    deploy(store, ASYNC)
    assert "page size 20000, poll interval 1 s, projections: all" in started(tmp_path, dsn)
    (tmp_path / "jsproj.toml").write_text(
        '[jsproj]\n[jsproj.daemon]\npage_size = 7\npoll_interval = 0.2\nprojections = ["Totals"]\ntimeout = 3\n'
    )
    assert "page size 7, poll interval 0.2 s, projections: Totals" in started(tmp_path, dsn)
    env = {"JSPROJ_PAGE_SIZE": "9", "JSPROJ_DAEMON_PROJECTIONS": "Totals Other"}
    assert "page size 9, poll interval 0.2 s, projections: Totals, Other" in started(tmp_path, dsn, env=env)
    line = started(tmp_path, dsn, "--page-size", "11", "--projection", "Other", env=env)
    assert "page size 11, poll interval 0.2 s, projections: Other" in line


def test_bad_daemon_settings_in_jsproj_toml_are_named(store: EventStore, dsn: str, tmp_path: Path) -> None:
    (tmp_path / "jsproj.toml").write_text("[jsproj.daemon]\npage_sise = 7\n")
    done = jsproj("daemon", "--until-caught-up", "--dsn", dsn, cwd=tmp_path)
    assert done.returncode == 2 and "unknown daemon setting 'page_sise'" in done.stderr
    (tmp_path / "jsproj.toml").write_text('[jsproj.daemon]\npage_size = "many"\n')
    done = jsproj("daemon", "--until-caught-up", "--dsn", dsn, cwd=tmp_path)
    assert done.returncode == 2 and "jsproj.follow.daemon.page_size must be a whole number" in done.stderr
    (tmp_path / "jsproj.toml").write_text("[jsproj.daemon]\npage_size = 0\n")
    done = jsproj("daemon", "--until-caught-up", "--dsn", dsn, cwd=tmp_path)
    assert done.returncode == 2 and "page-size" in done.stderr, "the option's own check applies to its toml value"
