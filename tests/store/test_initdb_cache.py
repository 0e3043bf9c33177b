"""New clusters start from a kept copy of a fresh initdb folder: the same cluster, made faster; never needed."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from jsproj.tools import initdb_cache
from jsproj.tools.postgres_cluster import temporary_cluster


def started(prefix: str) -> list[str]:
    """A cluster made, started and asked what it is; destroyed after."""
    cluster = temporary_cluster(prefix=prefix)
    cluster.init(durable=False)
    try:
        cluster.start()
        with psycopg.connect(cluster.dsn) as conn:
            return [str(v) for v in conn.execute("select current_user, current_setting('lc_collate')").fetchone()]
    finally:
        cluster.destroy()


@pytest.mark.slow  # two clusters of its own (make test-fast: left out)
def test_a_second_cluster_is_a_copy_of_the_first_ones_fresh_folder_and_a_broken_copy_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert not initdb_cache.cache_root().exists()
    first = started("jsproj-cache-a-")  # initdb, then kept
    [kept] = list(initdb_cache.cache_root().iterdir())
    assert (kept / "PG_VERSION").is_file() and oct(initdb_cache.cache_root().stat().st_mode)[-3:] == "700"
    assert started("jsproj-cache-b-") == first == ["jsproj", "C"]  # from the copy: the same cluster
    (kept / "PG_VERSION").unlink()  # a broken copy: initdb again, and its folder kept instead
    assert started("jsproj-cache-c-") == first
    assert (kept / "PG_VERSION").is_file()
