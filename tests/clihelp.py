"""Running the installed ``jsproj`` console script as a user runs it, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JSPROJ = Path(sys.executable).parent / "jsproj"
QUEST = ROOT / "src" / "jsproj" / "examples" / "quest"


def jsproj(
    *args: str, cwd: Path | None = None, stdin: str | None = None, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``jsproj ARGS`` with no JSPROJ_* settings but ``env``'s; never raises on a non-zero exit."""
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
