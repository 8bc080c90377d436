"""A throwaway PostgreSQL server for tests: ``initdb`` into a temporary folder, a loopback port,
trust authentication, stopped and deleted at the end. Uses the PostgreSQL binaries the machine
has (Debian's ``/usr/lib/postgresql/N/bin``, or ``pg_ctl`` on PATH). As root, the server runs as
the ``postgres`` user, since PostgreSQL refuses to run as root. For outage tests it can be taken
away (a fast stop, or SIGKILL of the postmaster, a crash) and started again on the same port and
data directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def find_bindir() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="gaitlab-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.user else []
        subprocess.run(
            [*prefix, *command], check=True, capture_output=True, text=True, cwd=self.folder
        )

    def start(self) -> ThrowawayPostgres:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "gaitlab",
            "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        self._start_server()
        return self

    def _start_server(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.folder / "log"), "-w", "start",
        )  # fmt: skip

    def take_away(self, how: str) -> None:
        """``stop``: ``pg_ctl stop -m fast`` (sessions are ended, then the server stops);
        ``crash``: SIGKILL of the postmaster (its backends then exit on their own). Returns
        once nothing listens on the port."""
        if how == "stop":
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        elif how == "crash":
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.01)
        else:
            raise ValueError(f"how: 'stop' or 'crash', not {how!r}")

    def running(self) -> bool:
        """The server accepts connections."""
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def bring_back(self, timeout: float = 30.0) -> None:
        """Start the server again on the same port and data directory (after a crash, once
        the backends of the killed postmaster have exited; it recovers from its WAL)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._start_server()
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"postgresql://gaitlab@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh, empty database on this server; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return f"postgresql://gaitlab@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server for good and delete its files (no shutdown checkpoint: they go)."""
        try:
            with contextlib.suppress(subprocess.CalledProcessError):  # away already (crashed)
                pg_ctl = str(self.bindir / "pg_ctl")
                self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Running (a zombie is not: the killed postmaster is not our child, and whoever adopted
    it may reap it late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
