"""deploy/: the Dockerfile, the docker-compose example and the systemd unit name only real commands, options
and files. (No Docker engine runs here, so the image is not built by the tests; the unit is verified by
systemd's own checker where it is installed.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from clihelp import JSPROJ, jsproj

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def dockerfile_array(instruction: str) -> list[str]:
    line = next(x for x in (DEPLOY / "Dockerfile").read_text().splitlines() if x.startswith(instruction + " "))
    return list(json.loads(line[len(instruction) + 1 :]))


def test_the_images_command_is_a_real_jsproj_command_with_real_options() -> None:
    assert dockerfile_array("ENTRYPOINT") == ["jsproj"]
    command = dockerfile_array("CMD")
    done = jsproj(*command, "--help")  # click refuses an unknown option before it prints help
    assert done.returncode == 0, done.stderr
    assert "--metrics-port" in done.stdout


def test_the_image_copies_files_that_exist_and_checks_the_health_the_daemon_serves() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert "/healthz" in text and "9464" in text
    assert "'.[binary]'" in text and "constraints.txt" in text


def test_the_compose_examples_commands_and_settings_are_jsprojs() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    for command in re.findall(r"command: (\[.*\])", text):
        done = jsproj(*json.loads(command), "--help")
        assert done.returncode == 0, done.stderr
    assert set(re.findall(r"(JSPROJ_[A-Z_]+):", text)) <= {
        "JSPROJ_DSN",
        "JSPROJ_SCHEMA",
        "JSPROJ_LOG_FORMAT",
        "JSPROJ_PAGE_SIZE",
    }
    assert (ROOT / "src/jsproj/examples/quest/projections").is_dir()


def test_the_systemd_unit_passes_systemds_checker(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (DEPLOY / "jsproj-daemon.service").read_text()
    local = (  # this Python's jsproj, and the root user: what the checker looks up
        unit.replace("/usr/local/bin/jsproj", str(JSPROJ))
        .replace("EnvironmentFile=/etc/jsproj/daemon.env", f"EnvironmentFile=-{tmp_path}/daemon.env")
        .replace("User=jsproj", "User=root")
        .replace("Group=jsproj", "Group=root")
    )
    (tmp_path / "jsproj-daemon.service").write_text(local)
    done = subprocess.run([analyze, "verify", str(tmp_path / "jsproj-daemon.service")], capture_output=True, text=True)
    assert done.returncode == 0 and "Unknown" not in done.stderr, done.stderr
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert jsproj(*exec_start.split()[1:], "--help").returncode == 0
