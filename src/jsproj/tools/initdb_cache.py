"""A copy of a fresh ``initdb`` data folder, kept per user, from which new clusters start.

``initdb`` writes and checks every system catalog of a new cluster: ~1 s, more when it syncs. Its result
depends only on the program and its arguments, so the first run's folder is kept (in the user's cache folder,
``$XDG_CACHE_HOME/jsproj/initdb`` or ``~/.cache/jsproj/initdb``, mode 0700: no other user's folder is ever
used) and a later cluster with the same program and arguments is a copy of it (~0.1 s). A cluster made so is
the same as one ``initdb`` makes, system identifier included (which only replication compares). Anything that
goes wrong here falls back to ``initdb``: the cache is never needed.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import tempfile
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jsproj" / "initdb"


def key(initdb: Path, args: list[str], user: pwd.struct_passwd | None) -> str:
    """What the folder depends on: the program (path, size, time) and its arguments, and who owns it."""
    found = initdb.stat()
    text = f"{initdb}:{found.st_size}:{found.st_mtime_ns}:{args}:{user.pw_uid if user else os.geteuid()}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def restore(name: str, data_dir: Path, user: pwd.struct_passwd | None) -> bool:
    """Fill ``data_dir`` (empty) with the kept folder ``name``; False when there is none (or it fails)."""
    kept = cache_root() / name
    if not (kept / "PG_VERSION").is_file():
        shutil.rmtree(kept, ignore_errors=True)  # (none, or broken: initdb's next folder is kept instead)
        return False
    try:
        shutil.copytree(kept, data_dir, symlinks=True, dirs_exist_ok=True)
        if user is not None:
            for folder, _, files in os.walk(data_dir):
                os.chown(folder, user.pw_uid, user.pw_gid)
                for file in files:
                    os.chown(os.path.join(folder, file), user.pw_uid, user.pw_gid)
    except OSError:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        return False
    return True


def keep(name: str, data_dir: Path) -> None:
    """Keep a copy of a fresh ``data_dir`` as ``name`` (atomically: a half copy is never seen); errors ignored."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        if (root / name).exists():
            return
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    except OSError:
        return
    try:
        shutil.copytree(data_dir, staging / "data", symlinks=True)
        os.rename(staging / "data", root / name)  # (another process may have kept it first: then this fails)
    except OSError:
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
