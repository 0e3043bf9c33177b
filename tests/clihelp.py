"""Running ``jsproj`` for the CLI tests: in this process through click's CliRunner, or as the installed console script.

:func:`jsproj` runs the command in-process, with what a user's process would
have: no JSPROJ_* settings but ``env``'s, the working directory ``cwd``,
``stdin`` as standard input, stdout and stderr kept apart, the exit code,
and an uncaught exception's traceback on stderr with exit code 1. It saves
the ~0.15 s (idle machine) to ~0.6 s (busy) a process costs to start and
import jsproj. :func:`jsproj_process` runs the installed script itself, for
the tests that are about the process: the console script, signals, terminals.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from jsproj.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
JSPROJ = Path(sys.executable).parent / "jsproj"
QUEST = ROOT / "src" / "jsproj" / "examples" / "quest"


@dataclass(frozen=True)
class Done:
    """What a finished ``jsproj`` run left: like :class:`subprocess.CompletedProcess`."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@contextmanager
def working_directory(folder: Path | None) -> Iterator[None]:
    """Run in ``folder`` (None: where we are), and come back whatever happens."""
    before = os.getcwd()
    if folder is not None:
        os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def jsproj(*args: str, cwd: Path | None = None, stdin: str | None = None, env: dict | None = None) -> Done:
    """Run ``jsproj ARGS`` in-process with no JSPROJ_* settings but ``env``'s; never raises on a non-zero exit."""
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("JSPROJ_")}
    overrides.update(env or {})
    with working_directory(cwd):
        result = CliRunner().invoke(main, list(args), input=stdin, env=overrides, prog_name="jsproj")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))  # what Python prints for an uncaught one
    return Done(args, result.exit_code, result.stdout, stderr)


def jsproj_process(
    *args: str, cwd: Path | None = None, stdin: str | None = None, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``jsproj ARGS`` with no JSPROJ_* settings but ``env``'s; never raises on a non-zero exit."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JSPROJ_")}
    environment.update(env or {})
    return subprocess.run(
        [str(JSPROJ), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=environment,
    )
