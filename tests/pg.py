"""A real, throwaway PostgreSQL cluster for tests (no mocks, no system service).

:class:`PostgresServer` runs ``initdb`` and ``pg_ctl`` from the PostgreSQL server binaries
(``/usr/lib/postgresql/15/bin`` on Debian, package ``postgresql-15``; ``$NEUROMOSAIC_PG_BIN``
overrides the folder) on 127.0.0.1 at a free port, with its data folder and Unix socket in a
fresh folder under ``/tmp``. TCP logins need a password (``scram-sha-256``), so a wrong
password really fails; the test user is the cluster's superuser and may create databases.

PostgreSQL refuses to run as root. Run as root (as CI does), the binaries run as the
``postgres`` system user through ``runuser -u postgres --``, and the cluster's folder is
created in ``/tmp`` (never under pytest's ``tmp_path``, whose parents only root may enter)
and handed to that user. Run as anyone else, the binaries run directly as that user.

The cluster trades durability for speed (``initdb --no-sync``, ``fsync=off``,
``full_page_writes=off``; commits are synchronous so a crash restart loses nothing
committed): it lives for one test session.

Example (skipped where the binaries are missing)::

    with PostgresServer() as pg:
        url = pg.create_database("demo")   # postgresql://neuromosaic:...@127.0.0.1:PORT/demo
        pg.restart()                       # same port, same data
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresServer", "PostgresUnavailable", "find_bin_dir"]

_DEFAULT_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)
_SERVICE_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or the ``postgres`` user, when root) are missing."""


def find_bin_dir() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``$NEUROMOSAIC_PG_BIN`` first, then ``/usr/lib/postgresql/15/bin``, then the newest
    ``/usr/lib/postgresql/*/bin``, then ``initdb`` on ``PATH``.

    Raises:
        PostgresUnavailable: No folder has the three binaries.
    """
    candidates: list[Path] = []
    if os.environ.get("NEUROMOSAIC_PG_BIN"):
        candidates.append(Path(os.environ["NEUROMOSAIC_PG_BIN"]))
    candidates += [Path(p) for p in _DEFAULT_BIN_DIRS]
    installed = Path("/usr/lib/postgresql")
    if installed.is_dir():
        versions = [p for p in installed.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all(os.access(folder / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (install the Debian package postgresql-15 or "
        "set NEUROMOSAIC_PG_BIN to the folder holding initdb and pg_ctl)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One throwaway PostgreSQL cluster: start, create databases, restart, stop and delete.

    Args:
        user: The superuser that tests log in as (over TCP, with ``password``).
        password: Its password; a random one by default.
        database: A database created at start, used by :attr:`url`.
        bin_dir: Folder of the server binaries; :func:`find_bin_dir` by default.

    Raises:
        PostgresUnavailable: The binaries are missing, or running as root without a
            ``postgres`` system user.
    """

    def __init__(self, *, user: str = "neuromosaic", password: str | None = None,
                 database: str = "neuromosaic", bin_dir: Path | None = None) -> None:
        self.user = user
        self.password = password or "pw-" + secrets.token_hex(8)
        self.database = database
        self.bin_dir = bin_dir or find_bin_dir()
        self.host = "127.0.0.1"
        self.port = 0
        self._as_root = os.geteuid() == 0
        if self._as_root:
            try:
                self._service = pwd.getpwnam(_SERVICE_USER)
            except KeyError:
                raise PostgresUnavailable("running as root needs the 'postgres' system user "
                                          "(created by the postgresql-15 package)") from None
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root needs runuser (util-linux)")
        self.base_dir: Path | None = None
        self.running = False
        self._keep_port = False  # a restart must come back on the same port
        self._database_created = False

    # ------------------------------------------------------------------ paths and commands

    @property
    def data_dir(self) -> Path:
        """The cluster's data folder (``PGDATA``)."""
        assert self.base_dir is not None, "start() first"
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        """The server's log (read it when a start fails)."""
        assert self.base_dir is not None, "start() first"
        return self.base_dir / "server.log"

    def url(self, database: str | None = None, *, password: str | None = None) -> str:
        """``postgresql://user:password@127.0.0.1:PORT/database`` (psycopg 3 under SQLAlchemy 2.1).

        Args:
            database: Defaults to the database created at start.
            password: Another password than the real one (for wrong-password tests).
        """
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@{self.host}:{self.port}/{database or self.database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", _SERVICE_USER, "--", *cmd]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        proc = subprocess.run(cmd, cwd=self.base_dir, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            log = ""
            if self.base_dir is not None and self.log_file.exists():
                log = "\n--- server log ---\n" + self.log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}"
                               f"{proc.stderr}{log}")
        return proc

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PostgresServer:
        """Create the cluster on first call (initdb), then start it and wait until it accepts
        connections. A later call (after :meth:`stop`) starts it again on the same port."""
        if self.running:
            return self
        if self.base_dir is None:
            self._init_cluster()
        for attempt in range(3):
            if not self._keep_port:
                self.port = _free_port()  # a port taken meanwhile by someone else: pick again
            try:
                self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
                          "-l", str(self.log_file), "-o", f"-p {self.port}", timeout=90)
                break
            except RuntimeError:
                if attempt == 2 or self._keep_port:
                    raise
        self.running = True
        if not self._database_created:
            self.create_database(self.database)
            self._database_created = True
        return self

    def _init_cluster(self) -> None:
        self.base_dir = Path(tempfile.mkdtemp(prefix="neuromosaic-pg-", dir="/tmp"))
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._as_root:
            for path in (self.base_dir, pwfile):
                os.chown(path, self._service.pw_uid, self._service.pw_gid)
        self._run("initdb", "-D", str(self.data_dir), "-U", self.user, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--locale=C", "--no-sync", "--no-instructions", timeout=120)
        pwfile.unlink()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base_dir}'",
            "fsync": "off",
            # on: a crash restart (mode="immediate") must keep committed trials; with fsync
            # off a commit is still only a write() into the OS cache, so it stays fast.
            "synchronous_commit": "on",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# throwaway test cluster (tests/pg.py)\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode`` is pg_ctl's: ``smart``, ``fast`` or ``immediate`` (a crash:
        no checkpoint, recovery at the next start)."""
        if not self.running:
            return
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data_dir))
        self.running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop (``mode`` as in :meth:`stop`) and start again on the same port and data."""
        self.stop(mode)
        self._keep_port = True
        try:
            self.start()
        finally:
            self._keep_port = False

    def cleanup(self) -> None:
        """Stop the server (if running) and delete the cluster's folder."""
        try:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        finally:
            if self.base_dir is not None:
                shutil.rmtree(self.base_dir, ignore_errors=True)
                self.base_dir = None

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()

    # ------------------------------------------------------------------ databases

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit psycopg 3 connection as the test user (close it yourself)."""
        import psycopg  # noqa: F811 (the runtime import of the TYPE_CHECKING name)

        deadline = time.monotonic() + 10
        while True:
            try:
                return psycopg.connect(host=self.host, port=self.port, user=self.user,
                                       password=self.password, dbname=database,
                                       autocommit=True, connect_timeout=10)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name`` and return its URL."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name WITH (FORCE)``: open connections are ended first."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))
