"""The service end to end: a real uvicorn process on a free port, real ONNX Runtime, FAISS and
a real store (the embedded SQLite file, or a throwaway PostgreSQL server); enroll, identify,
verify, delete, restart, and bad inputs answered with the right 4xx."""

from __future__ import annotations

import io
import zipfile

import httpx
import numpy as np
import pytest

from tests.helpers import toy_model
from tests.service.live_server import MAX_UPLOAD, Server
from tests.service.test_recognition import person, walker_clip


@pytest.fixture(params=["sqlite", "postgres"])
def server(request, tmp_path):
    env = {}
    if request.param == "postgres":
        env["GAITLAB_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    model = toy_model(tmp_path / "toy.onnx", threshold=0.99)
    server = Server(model, tmp_path / "data", env=env).start()
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
    assert ready["status"] == "ready"
    assert ready["checks"] == {"model": True, "store": True, "self_test": True}
    model = client.get("/model").json()
    assert model["provider"] == "CPUExecutionProvider"
    assert model["gallery_samples"] == 2
    assert model["card"]["version"] == "toy-1"
    assert model["self_test"]["ok"] is True

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


def test_bulk_enrollment(server):
    import json

    client = httpx.Client(base_url=server.url, timeout=30)
    manifest = [{"subject_id": f"p{n}", "condition": "nm-01", "view": "090"} for n in range(3)]
    files = [("clips", (f"{n}.npy", person(n), "application/octet-stream")) for n in range(3)]
    answer = client.post("/gallery/samples", files=files, data={"manifest": json.dumps(manifest)})
    assert answer.status_code == 201, answer.text
    assert [s["subject_id"] for s in answer.json()["samples"]] == ["p0", "p1", "p2"]
    assert client.post("/identify", files=upload(person(2))).json()["decision"] == "p2"

    broken = [*files[:1], ("clips", ("x.npy", b"junk", "application/octet-stream"))]
    refusals = [
        (files, "not json", "bad_manifest"),
        (files, json.dumps(manifest[:2]), "bad_manifest"),  # 3 clips, 2 entries
        (files, json.dumps([{"subject_id": "bad id"}] * 3), "bad_manifest"),
        (files, json.dumps([{**m, "extra": 1} for m in manifest]), "bad_manifest"),
        (broken, json.dumps(manifest[:2]), "unsupported_format"),
    ]
    for clips, text, tag in refusals:
        answer = client.post("/gallery/samples", files=clips, data={"manifest": text})
        assert answer.status_code in (415, 422), answer.text
        assert answer.json()["error"] == tag, answer.text
    assert "clip 1" in answer.json()["detail"]
    assert client.get("/gallery/subjects").json()["total"] == 3  # nothing from the refusals
