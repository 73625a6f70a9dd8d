"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, started on a free port, removed after.

    with PostgresServer() as server:
        server.url                       # postgresql://billing:<password>@127.0.0.1:<port>/billing_test
        server.url_with("other-pw")      # the same with another password (authentication fails)
        server.connect()                 # psycopg2 connection as the test user

The server listens on 127.0.0.1 only, with its unix socket in the temp dir. The `postgres`
superuser is trusted (to set things up); the test user must give its password (scram-sha-256),
so credentials carry a real secret and a wrong one really fails. Durability is off for speed.

Missing server binaries raise `PostgresNotInstalled`: run `bash scripts/install-postgres.sh`.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg2

INSTALL_HINT = "run `bash scripts/install-postgres.sh` to install them"
_SUPERUSER = "postgres"
_OS_USER = "postgres"  # the server refuses to run as root
_START_ATTEMPTS = 3
_READY_SECONDS = 30.0
_FAST = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "40",
    "max_wal_senders": "0",
    "wal_level": "minimal",
    "autovacuum": "off",
    "jit": "off",
    "log_min_messages": "warning",
    "timezone": "UTC",
}


class PostgresNotInstalled(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


class PostgresServerError(RuntimeError):
    """The throwaway cluster could not be created or started."""


def find_bin_dir() -> Path:
    """The newest `/usr/lib/postgresql/<version>/bin`, else the directory of `initdb` on PATH."""

    def version(path: str) -> tuple:
        name = Path(path).parent.parent.name
        return tuple(int(p) if p.isdigit() else 0 for p in name.split("."))

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    for initdb in candidates:
        directory = Path(initdb).resolve().parent
        if all(os.access(directory / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise PostgresNotInstalled(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in /usr/lib/postgresql/*/bin"
        f" or on PATH; {INSTALL_HINT}"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One private cluster; `start()`/`stop()` or use it as a context manager."""

    def __init__(
        self, user: str = "billing", database: str = "billing_test", password: str | None = None
    ):
        self.user = user
        self.database = database
        self.password = password or f"pw-{secrets.token_hex(12)}"
        self.host = "127.0.0.1"
        self.port = 0
        self.root: Path | None = None
        self._bin: Path | None = None
        self._run_as: dict[str, Any] = {}
        self._started = False

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> PostgresServer:
        if self._started:
            return self
        self._bin = find_bin_dir()  # before creating anything: a missing install is a clean error
        try:
            self._prepare_root()
            self._initdb()
            self._start_on_free_port()
            self._wait_until_ready()
            self._create_user_and_database()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops the server (if it runs) and removes the whole temp dir; safe to call twice."""
        if self._started and self.root is not None:
            result = self._tool(
                "pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30"
            )
            if result.returncode != 0:
                self._kill_postmaster()
            self._started = False
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # connection details ---------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "data"

    @property
    def url(self) -> str:
        return self.url_with(self.password)

    def url_with(self, password: str, database: str | None = None) -> str:
        return f"postgresql://{self.user}:{password}@{self.host}:{self.port}/{database or self.database}"

    def connect(self, database: str | None = None, superuser: bool = False) -> Any:
        """A psycopg2 connection (autocommit) as the test user, or as the trusted superuser."""
        connection = psycopg2.connect(
            host=self.host,
            port=self.port,
            dbname=database or self.database,
            user=_SUPERUSER if superuser else self.user,
            password=None if superuser else self.password,
            connect_timeout=5,
        )
        connection.autocommit = True
        return connection

    def log(self) -> str:
        """The server log so far (for error messages)."""
        path = self.root / "server.log" if self.root else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    # steps ------------------------------------------------------------------------------------
    def _prepare_root(self) -> None:
        base = tempfile.gettempdir()
        if len(base) > 60 or not os.access(
            base, os.W_OK
        ):  # unix socket paths are limited to ~107 bytes
            base = "/tmp"
        self.root = Path(tempfile.mkdtemp(prefix="pgtest-", dir=base))
        if os.geteuid() == 0:
            import pwd

            try:
                account = pwd.getpwnam(_OS_USER)
            except KeyError:
                subprocess.run(
                    ["useradd", "--system", "--user-group", _OS_USER],
                    check=True,
                    capture_output=True,
                )
                account = pwd.getpwnam(_OS_USER)
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        os.chmod(self.root, 0o700)
        # the temp dir's parents must be traversable by the server's OS user
        if self._run_as and not self._accessible_to_server(self.root.parent):
            raise PostgresServerError(
                f"{self.root.parent} is not accessible to the {_OS_USER} OS user"
            )

    def _accessible_to_server(self, directory: Path) -> bool:
        return self._run(["test", "-x", str(directory)]).returncode == 0

    def _initdb(self) -> None:
        options = ["-D", str(self.data_dir), "-U", _SUPERUSER, "--auth=trust", "--encoding=UTF8"]
        options += ["--no-locale", "--no-sync"]
        result = self._tool("initdb", *options, "--no-instructions")
        if result.returncode != 0 and "--no-instructions" in result.stderr:  # PostgreSQL < 14
            result = self._tool("initdb", *options)
        if result.returncode != 0:
            raise PostgresServerError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        # TCP on 127.0.0.1 only: the superuser is trusted, everyone else gives a password
        hba = "\n".join(
            [
                f"local all {_SUPERUSER} trust",
                f"host all {_SUPERUSER} 127.0.0.1/32 trust",
                "host all all 127.0.0.1/32 scram-sha-256",
                "",
            ]
        )
        self._write_as_server(self.data_dir / "pg_hba.conf", hba)

    def _start_on_free_port(self) -> None:
        last_error = ""
        for _ in range(_START_ATTEMPTS):
            self.port = free_port()
            settings = {
                **_FAST,
                "listen_addresses": "127.0.0.1",
                "port": str(self.port),
                "unix_socket_directories": str(self.root),
                "password_encryption": "scram-sha-256",
            }
            self._write_as_server(
                self.data_dir / "postgresql.auto.conf",
                "".join(f"{k} = '{v}'\n" for k, v in settings.items()),
            )
            result = self._tool(
                "pg_ctl",
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.data_dir.parent / "server.log"),
                "-w",
                "-t",
                "30",
            )
            if result.returncode == 0:
                self._started = True
                return
            last_error = f"{result.stdout}\n{result.stderr}\n{self.log()}"
            if "already in use" not in last_error:
                break
        raise PostgresServerError(f"pg_ctl start failed:\n{last_error}")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _READY_SECONDS
        while True:
            try:
                self.connect(database="postgres", superuser=True).close()
                return
            except psycopg2.OperationalError as ex:
                if time.monotonic() > deadline:
                    raise PostgresServerError(
                        f"server did not accept connections: {ex}\n{self.log()}"
                    ) from None
                time.sleep(0.05)

    def _create_user_and_database(self) -> None:
        admin = self.connect(database="postgres", superuser=True)
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'CREATE ROLE "{self.user}" LOGIN PASSWORD %s', (self.password,))
                cursor.execute(f'CREATE DATABASE "{self.database}" OWNER "{self.user}"')
        finally:
            admin.close()

    def create_database(self, name: str) -> str:
        """Another empty database owned by the test user; returns its URL."""
        admin = self.connect(database="postgres", superuser=True)
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        finally:
            admin.close()
        return self.url_with(self.password, database=name)

    # process helpers --------------------------------------------------------------------------
    def _run(self, command: list[str]) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", TZ="UTC")
        if self._run_as:
            env["HOME"] = str(self.root)
        return subprocess.run(
            command,
            cwd=str(self.root) if self.root else None,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            **self._run_as,
        )

    def _tool(self, name: str, *args: str) -> subprocess.CompletedProcess:
        assert self._bin is not None
        return self._run([str(self._bin / name), *args])

    def _write_as_server(self, path: Path, text: str) -> None:
        path.write_text(text)
        if self._run_as:
            os.chown(path, self._run_as["user"], self._run_as["group"])
        os.chmod(path, 0o600)

    def _kill_postmaster(self) -> None:
        """Last resort when `pg_ctl stop` fails: SIGKILL the postmaster named in postmaster.pid."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 9)
        except (OSError, ValueError, IndexError):
            pass
