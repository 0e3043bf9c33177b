"""The embedded default database: a private PostgreSQL per project, started on demand.

Commands use it when neither ``--dsn`` nor ``JSPROJ_DSN`` is given. The
project is the nearest folder, from the current one up, holding
``jsproj.toml`` (the explicit project marker); else the current folder
itself. A parent's ``.jsproj/`` alone never counts: a folder copied into a
checkout, or any folder under one, gets a database of its own rather than
the checkout's. Its data lives in
``<project>/.jsproj/pgdata``, unless the server runs as another OS user
(``postgres``, when jsproj runs as root) that cannot reach that folder: then
in ``/var/lib/jsproj/<project>-<hash>/pgdata``. The socket lives in a short
private folder under ``/tmp`` (socket paths are limited to ~100 bytes).

A server the CLI starts (or finds) is kept running for the next command,
until ``jsproj db stop``. One a program's :func:`jsproj.connect` starts
stops when the last process using it through ``connect`` exits (each
such process is listed in ``.jsproj/users/``, its pid, while it runs), so
scripts leave no server behind. ``.jsproj/`` holds a ``.gitignore`` of
``*``: nothing of it is committed.

Every start is recorded in the user's registry of embedded databases
(``$XDG_STATE_HOME/jsproj/databases``, else ``~/.local/state/jsproj/databases``:
one file per project, named by its digest, holding its folder), so that
``jsproj db list`` and ``jsproj db stop --all`` find them all; entries whose
folder or data no longer exists are pruned when it is read.
"""

from __future__ import annotations

import atexit
import fcntl
import grp
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jsproj import errors
from jsproj.tools.postgres_cluster import Cluster, server_os_user

SYSTEM_DATA_ROOT = Path("/var/lib/jsproj")
_USING: set[tuple[Path, int]] = set()  # (project, pid) this process is a user of, through connect()
STARTED_BY_A_PROGRAM = "started-by-a-program"  # in .jsproj/: the last of its users stops it at exit


def project_dir(start: Path | None = None) -> Path:
    """The project folder: the nearest one, from ``start`` up, holding ``jsproj.toml``, else ``start`` itself
    (whose own ``.jsproj/`` holds its database: a parent's ``.jsproj/`` is another project's)."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "jsproj.toml").is_file():
            return folder
    return start


def _searchable_by(folder: Path, uid: int, gids: set[int]) -> bool:
    """Whether a user can reach files inside ``folder`` (it and every parent searchable)."""
    for part in (folder, *folder.parents):
        st = part.stat()
        if st.st_uid == uid:
            bits = st.st_mode >> 6
        elif st.st_gid in gids:
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        if not bits & 1:
            return False
    return True


def _digest(project: Path) -> str:
    return hashlib.sha256(str(project).encode()).hexdigest()[:10]


def default_cluster(project: Path | None = None) -> Cluster:
    """The embedded cluster of a project (nothing is created)."""
    project = project or project_dir()
    digest = _digest(project)
    data_dir = project / ".jsproj" / "pgdata"
    user = server_os_user()
    if user is not None:
        gids = {user.pw_gid, *(g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem)}
        if not _searchable_by(project, user.pw_uid, gids):
            slug = re.sub(r"[^A-Za-z0-9_.-]", "_", project.name)[:40] or "project"
            data_dir = SYSTEM_DATA_ROOT / f"{slug}-{digest}" / "pgdata"
    socket_dir = Path("/tmp") / f"jsproj-{os.getuid()}-{digest}"  # noqa: S108 -- short path for the socket, 0700
    return Cluster(data_dir=data_dir, socket_dir=socket_dir)


@contextmanager
def _locked(project: Path) -> Iterator[None]:
    """Serialise initialising and starting across jsproj processes of one project."""
    lock_dir = project / ".jsproj"
    lock_dir.mkdir(parents=True, exist_ok=True)
    ignore = lock_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# jsproj's embedded database and its lock: nothing here belongs in git\n*\n", "utf-8")
    with open(lock_dir / "db.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_running(
    project: Path | None = None,
    *,
    create: bool = True,
    keep: bool = True,
    on_start: Callable[[Path, Cluster], None] | None = None,
) -> Cluster:
    """The project's embedded cluster, started if needed, and created if needed unless ``create`` is False
    (then a project without one is a :class:`~jsproj.errors.StoreUnavailableError`, and nothing is written).
    ``keep`` (the CLI's way) leaves it running after this process; else this process is one of its users,
    and the last of them to exit stops a server one of them started. ``on_start(project, cluster)`` is
    called when this call started the server (not when it already ran)."""
    project = project or project_dir()
    cluster = default_cluster(project)
    if not create and not cluster.is_initialised():
        raise errors.StoreUnavailableError(
            f"no database here: run `jsproj db start` or pass --dsn (no embedded database in {project})"
        )
    with _locked(project):
        if not cluster.is_initialised():
            cluster.data_dir.parent.mkdir(parents=True, exist_ok=True)
            cluster.init()
        started = not cluster.is_running()
        cluster.start()
        _owned(project, keep=keep, started=started)
    if started:
        _register(project)
    if started and on_start is not None:
        on_start(project, cluster)
    return cluster


def _owned(project: Path, *, keep: bool, started: bool) -> None:
    """Record who keeps the server running (under the project's lock): the CLI for good, or this process."""
    marker = project / ".jsproj" / STARTED_BY_A_PROGRAM
    if keep:
        marker.unlink(missing_ok=True)  # the CLI uses it: it runs until `jsproj db stop`
        return
    if started:
        marker.touch()
    if (project, os.getpid()) in _USING:
        return  # this process is a user already: one entry, one leave at exit
    _USING.add((project, os.getpid()))
    users = project / ".jsproj" / "users"
    users.mkdir(exist_ok=True)
    (users / str(os.getpid())).touch()
    atexit.register(_leave, project, os.getpid())


def _leave(project: Path, pid: int) -> None:
    """At exit: this process no longer uses the server; the last user out stops one a program started."""
    users = project / ".jsproj" / "users"
    try:
        with _locked(project):
            (users / str(pid)).unlink(missing_ok=True)
            if any(_alive(entry) for entry in users.iterdir()):
                return
            marker = project / ".jsproj" / STARTED_BY_A_PROGRAM
            if marker.exists():
                default_cluster(project).stop()
                marker.unlink()
    except (OSError, errors.JsprojError):
        pass  # at exit, with nowhere to say it: `jsproj db list` shows a server left running


def _alive(entry: Path) -> bool:
    """Whether the process of a users entry still runs (a dead one's entry is removed)."""
    try:
        os.kill(int(entry.name), 0)
    except ValueError:
        return False
    except ProcessLookupError:
        entry.unlink(missing_ok=True)
        return False
    except PermissionError:
        pass  # another user's process, alive
    return True


def stop(project: Path | None = None) -> Cluster:
    """Stop the project's embedded cluster if it runs."""
    project = project or project_dir()
    cluster = default_cluster(project)
    with _locked(project):
        cluster.stop()
    return cluster


# -- the registry of this user's embedded databases -----------------------------


@dataclass(frozen=True)
class Database:
    """One embedded database of this user: its project folder and cluster, and whether it runs."""

    project: Path
    cluster: Cluster
    running: bool


def state_dir() -> Path:
    """jsproj's folder of the user's state (the registry, the REPL's history): ``$XDG_STATE_HOME/jsproj``,
    else ``~/.local/state/jsproj``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "jsproj"


def registry_dir() -> Path:
    """The folder of the registry: ``$XDG_STATE_HOME/jsproj/databases``, else ``~/.local/state/jsproj/databases``."""
    return state_dir() / "databases"


def _register(project: Path) -> None:
    """Record a started project (best effort: an unwritable home only leaves it out of ``db list``)."""
    folder = registry_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        entry = folder / _digest(project)
        partial = entry.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(str(project), "utf-8")
        partial.replace(entry)  # atomic: a concurrent reader sees the old entry or the new one
    except OSError:
        pass


def databases() -> list[Database]:
    """Every embedded database in the registry, by project folder; entries of folders (or data) that no
    longer exist are removed."""
    found: list[Database] = []
    folder = registry_dir()
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.suffix == ".tmp":
            continue
        try:
            project = Path(entry.read_text("utf-8").strip())
        except (OSError, UnicodeDecodeError):
            continue
        cluster = default_cluster(project) if project.is_absolute() and project.is_dir() else None
        if cluster is None or not cluster.is_initialised():
            entry.unlink(missing_ok=True)
            continue
        found.append(Database(project, cluster, cluster.is_running()))
    return sorted(found, key=lambda one: str(one.project))


def stop_all() -> list[Database]:
    """Stop every running embedded database of the registry; the ones stopped."""
    running = [one for one in databases() if one.running]
    for one in running:
        stop(one.project)
    return running
