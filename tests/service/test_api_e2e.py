"""The service end to end: a real uvicorn process on a free port, real ONNX Runtime, FAISS and
SQLite; enroll, identify, verify, delete, restart, and bad inputs answered with the right 4xx."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers import toy_model
from tests.service.test_recognition import person, walker_clip

REPO = Path(__file__).resolve().parents[2]
MAX_UPLOAD = 2_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: Path, data_dir: Path):
        self.model, self.data_dir = model, data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        env = {**os.environ, "GAITLAB_MAX_UPLOAD_BYTES": str(MAX_UPLOAD), "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gaitlab",
                "serve",
                "--port",
                str(self.port),
                "--model",
                str(self.model),
                "--data-dir",
                str(self.data_dir),
                "--device",
                "cpu",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start: {self.process.stdout.read().decode()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture
def server(tmp_path):
    server = Server(toy_model(tmp_path / "toy.onnx", threshold=0.99), tmp_path / "data").start()
    yield server
    server.stop()


def upload(data: bytes, name: str = "clip.npy") -> dict:
    return {"clip": (name, data, "application/octet-stream")}


def test_enroll_identify_verify_delete_and_restart(server):
    client = httpx.Client(base_url=server.url, timeout=30)
    for n in range(3):
        answer = client.post(
            f"/gallery/subjects/p{n}/samples",
            files=upload(person(n)),
            data={"condition": "nm-01", "view": "090", "metadata": '{"camera": "lab"}'},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["frames"] == 8

    found = client.post("/identify", files=upload(person(2)), params={"top_k": 2}).json()
    assert found["decision"] == "p2"
    assert found["hits"][0]["subject_id"] == "p2"
    assert len(found["hits"]) == 2
    assert found["model_version"] == "toy-1"
    assert client.post("/identify", files=upload(person(5))).json()["decision"] is None

    verified = client.post("/verify", files=upload(person(1)), data={"subject_id": "p1"}).json()
    assert verified["accepted"] is True
    rejected = client.post("/verify", files=upload(person(1)), data={"subject_id": "p0"}).json()
    assert rejected["accepted"] is False

    listing = client.get("/gallery/subjects", params={"limit": 2}).json()
    assert listing["total"] == 3
    assert [s["id"] for s in listing["items"]] == ["p0", "p1"]
    subject = client.get("/gallery/subjects/p0").json()
    assert subject["samples"][0]["metadata"] == {"camera": "lab"}
    assert client.delete("/gallery/subjects/p0").json()["samples_deleted"] == 1
    assert client.get("/gallery/subjects/p0").status_code == 404

    ready = client.get("/readyz").json()
    assert ready["provider"] == "CPUExecutionProvider"
    assert ready["gallery_samples"] == 2
    assert client.get("/model").json()["card"]["version"] == "toy-1"

    server.stop()
    server.start()
    client = httpx.Client(base_url=server.url, timeout=30)
    assert client.get("/gallery/subjects").json()["total"] == 2
    assert client.post("/identify", files=upload(person(1))).json()["decision"] == "p1"


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_bad_inputs_get_clear_4xx_answers(server):
    client = httpx.Client(base_url=server.url, timeout=30)
    client.post("/gallery/subjects/p0/samples", files=upload(person(0)))
    cases = [
        ("/identify", upload(b"not a clip at all"), {}, 415, "unsupported_format"),
        ("/identify", upload(b""), {}, 422, "corrupt_clip"),
        ("/identify", upload(b"\x00" * (MAX_UPLOAD + 10)), {}, 413, "clip_too_large"),
        ("/identify", upload(walker_clip(0, frames=2)), {}, 422, "too_few_frames"),
        ("/identify", upload(zipped({"../x.png": b"1"}), "c.zip"), {}, 422, "unsafe_archive"),
        ("/identify", upload(np.zeros(3).tobytes()), {}, 415, "unsupported_format"),
        ("/verify", upload(person(0)), {"subject_id": "nobody"}, 404, "subject_not_found"),
        ("/gallery/subjects/bad%20id/samples", upload(person(0)), {}, 422, None),
    ]
    for path, files, data, status, tag in cases:
        answer = client.post(path, files=files, data=data)
        assert answer.status_code == status, (path, answer.text)
        body = answer.json()
        if tag:
            assert body["error"] == tag
            assert body["detail"]
    assert client.post("/identify").status_code == 422  # no clip at all
    assert client.post("/identify", files=upload(person(0)), params={"top_k": 0}).status_code == 422
    assert client.delete("/gallery/subjects/p0/samples/999").status_code == 404
    bad_meta = client.post(
        "/gallery/subjects/p9/samples", files=upload(person(0)), data={"metadata": "[1, 2]"}
    )
    assert bad_meta.status_code == 422
    assert client.get("/gallery/subjects").json()["total"] == 1  # nothing half-enrolled
