"""A real ``gaitlab serve`` process (uvicorn) on a free port, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
MAX_UPLOAD = 2_000_000
ADMIN_KEY = "admin-key-0123456789abcdef"
CLIENT_KEY = "client-key-0123456789abcdef"
KEYS = {"GAITLAB_ADMIN_KEYS": ADMIN_KEY, "GAITLAB_CLIENT_KEYS": CLIENT_KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(
        self,
        model: Path | None,
        data_dir: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ):
        self.model, self.data_dir = model, data_dir
        self.env, self.args = env or {}, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 60) -> Server:
        """Start and wait until ``/healthz`` answers (a big gallery is embedded first)."""
        env = {
            **os.environ,
            "GAITLAB_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            "PYTHONPATH": str(REPO),
            **self.env,
        }
        command = [sys.executable, "-m", "gaitlab", "serve", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), "--device", "cpu", *self.args]
        if self.model is not None:
            command += ["--model", str(self.model)]
        # output to a file, not a pipe: a pipe nobody reads fills up and blocks the server
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def keyed_toy_server(folder: Path, env: dict[str, str] | None = None) -> Server:
    """A started server on the toy model (``tests.helpers.toy_model``) with an admin and a
    client key set, its files in ``folder``."""
    from tests.helpers import toy_model

    return Server(
        toy_model(folder / "toy.onnx"), folder / "data", env={**KEYS, **(env or {})}
    ).start()
