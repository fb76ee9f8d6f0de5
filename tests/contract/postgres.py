"""The official postgres image's entrypoint, replayed on the host for one container spec.

Follows docker-library/postgres `docker-entrypoint.sh`: initdb with POSTGRES_USER and the
POSTGRES_PASSWORD from the container's env, `host all all all scram-sha-256` appended to
pg_hba.conf, a socket-only temporary server, POSTGRES_DB created, then every file of
/docker-entrypoint-initdb.d run (executable `*.sh`) or sourced (other `*.sh`) by bash, or
fed to psql (`*.sql`), then the real server. Paths inside the container are the pod's
volumes mapped to host directories; the only deliberate difference is that loopback TCP
also asks for a password (`--auth-host`), because here every client comes from 127.0.0.1
while in a cluster they come from other pods and meet the appended rule.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

INITDB_DIR = "/docker-entrypoint-initdb.d"
SOCKET_DIR = "/var/run/postgresql"  # libpq's and the server's default socket directory
STARTUP_SECONDS = 30.0


def postgres_bindir() -> Path:
    """The newest PostgreSQL server's bin directory (PG_BINDIR overrides)."""
    if "PG_BINDIR" in os.environ:
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if candidates:
        return candidates[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("no PostgreSQL server binaries (initdb): install them or set PG_BINDIR")


class PostgresError(RuntimeError):
    """A step of the entrypoint failed; the message carries its output."""


class PostgresContainer:
    """One postgres container: initialized like the image does, then served on 127.0.0.1."""

    def __init__(
        self,
        container: Mapping[str, Any],
        env: Mapping[str, str],
        mounts: Mapping[str, Path],
        port: int,
        extra_options: Sequence[str] = (),
    ) -> None:
        self.container = container
        self.mounts = mounts
        self.port = port
        self.extra_options = list(extra_options)
        self.bindir = postgres_bindir()
        self.socket_dir = mounts[SOCKET_DIR]
        self.log_path = self.socket_dir / "server.log"
        # The server refuses to run as root; any other user runs it as itself.
        self.user: str | None = "postgres" if os.geteuid() == 0 else None
        self.env = self._entrypoint_env(env)
        self.data = self.host_path(self.env["PGDATA"])
        self.server: subprocess.Popen[bytes] | None = None

    def host_path(self, path: str) -> Path:
        """The host path of a path inside the container (through its volume mounts)."""
        for mount, host in sorted(self.mounts.items(), key=lambda item: -len(item[0])):
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                return host / os.path.relpath(path, mount)
        raise PostgresError(f"{path} is on the container's read-only root filesystem")

    def _entrypoint_env(self, container_env: Mapping[str, str]) -> dict[str, str]:
        """The image's ENV, the container's env, and what `docker_setup_env` exports."""
        env = {
            "PATH": f"{self.bindir}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PGDATA": "/var/lib/postgresql/data",
            **container_env,
        }
        env.setdefault("POSTGRES_USER", "postgres")
        env.setdefault("POSTGRES_DB", env["POSTGRES_USER"])
        env.setdefault("POSTGRES_INITDB_ARGS", "")
        env["PGPASSWORD"] = env.get("PGPASSWORD", env.get("POSTGRES_PASSWORD", ""))
        # The container's default socket directory and port, as they are on this host.
        env["PGHOST"] = str(self.socket_dir)
        env["PGPORT"] = str(self.port)
        return env

    def _run(self, argv: Sequence[str], what: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            argv,
            input=stdin,
            env=self.env,
            cwd=self.socket_dir,
            user=self.user,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresError(
                f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def _chown(self) -> None:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for directory in {*self.mounts.values(), self.data.parent}:
                for root, dirs, files in os.walk(directory):
                    for name in [
                        root,
                        *(os.path.join(root, d) for d in dirs),
                        *(os.path.join(root, f) for f in files),
                    ]:
                        os.chown(name, entry.pw_uid, entry.pw_gid)

    def initialize(self) -> list[str]:
        """`docker_init_database_dir` to `docker_temp_server_stop`; returns the files run."""
        self.data.mkdir(parents=True, exist_ok=True)
        self.data.chmod(0o700)
        self._chown()
        password_file = self.socket_dir / "pwfile"
        password_file.write_text(self.env.get("POSTGRES_PASSWORD", "") + "\n")
        self._chown()
        try:
            self._run(
                [
                    "initdb",
                    f"--username={self.env['POSTGRES_USER']}",
                    f"--pwfile={password_file}",
                    "--auth-host=scram-sha-256",
                    *shlex.split(self.env["POSTGRES_INITDB_ARGS"]),
                    "-D",
                    str(self.data),
                ],
                "initdb",
            )
        finally:
            password_file.unlink()
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("\nhost all all all scram-sha-256\n")
        self._pg_ctl("start", "-o", f"-c listen_addresses='' -p {self.port} -k {self.socket_dir}")
        try:
            self._setup_db()
            ran = self._process_init_files()
        finally:
            self._pg_ctl("stop", "-m", "fast")
        return ran

    def _pg_ctl(self, *args: str) -> None:
        self._run(
            ["pg_ctl", "-D", str(self.data), "-w", "-l", str(self.log_path), *args],
            f"pg_ctl {args[0]}",
        )

    def _psql(self, *args: str, database: str | None = None) -> list[str]:
        """`docker_process_sql`: psql stopping on the first error, no password prompt."""
        return [
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "--username",
            self.env["POSTGRES_USER"],
            "--no-password",
            "--no-psqlrc",
            "--dbname",
            database or self.env["POSTGRES_DB"],
            *args,
        ]

    def _setup_db(self) -> None:
        """`docker_setup_db`: create POSTGRES_DB unless it exists (SQL on stdin, as there)."""
        variable = ("--set", f"db={self.env['POSTGRES_DB']}")
        query = "SELECT 1 FROM pg_database WHERE datname = :'db' ;"
        found = self._run(
            self._psql(*variable, "--tuples-only", database="postgres"), "docker_setup_db", query
        )
        if not found.strip():
            self._run(
                self._psql(*variable, database="postgres"),
                "docker_setup_db",
                'CREATE DATABASE :"db" ;',
            )

    def _process_init_files(self) -> list[str]:
        """`docker_process_init_files /docker-entrypoint-initdb.d/*`."""
        directory = self.mounts.get(INITDB_DIR)
        ran: list[str] = []
        for path in sorted(directory.iterdir()) if directory else []:
            if path.name.endswith(".sh"):
                if os.access(path, os.X_OK):
                    self._run([str(path)], f"running {path.name}")
                else:
                    self._run(
                        ["bash", "-Eeo", "pipefail", "-c", '. "$1"', "entrypoint", str(path)],
                        path.name,
                    )
            elif path.name.endswith(".sql"):
                self._run(self._psql("-f", str(path)), f"running {path.name}")
            else:
                continue  # the entrypoint ignores (and compressed SQL is not used here)
            ran.append(path.name)
        return ran

    def start(self) -> None:
        """`exec postgres`: the server on 127.0.0.1 only, in its own process group."""
        with self.log_path.open("ab") as log:
            self.server = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.socket_dir),
                    *self.extra_options,
                ],
                env=self.env,
                cwd=self.socket_dir,
                user=self.user,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        """Run the container's startupProbe command (pg_isready) until it succeeds."""
        probe = self.container.get("startupProbe", {}).get("exec", {}).get("command") or [
            "pg_isready",
            "-h",
            "127.0.0.1",
        ]
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            result = subprocess.run(probe, env=self.env, capture_output=True, check=False)
            if result.returncode == 0:
                return
            if self.server is not None and self.server.poll() is not None:
                raise PostgresError(f"postgres exited:\n{self.log()}")
            if time.monotonic() > deadline:
                raise PostgresError(f"postgres not ready after {STARTUP_SECONDS} s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        """The server's log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL to the group if it lingers."""
        if self.server is None or self.server.poll() is not None:
            return
        os.killpg(self.server.pid, signal.SIGINT)
        try:
            self.server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(timeout=5)
