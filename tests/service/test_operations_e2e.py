"""Running it for real, against real uvicorn processes: model refresh under traffic, API keys,
limits, metrics, structured logs, and crash safety (SIGKILL in the middle of enrollments)."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time

import httpx
import numpy as np

from gaitlab.cli import main
from service.gallery import open_store
from tests.helpers import toy_model
from tests.service.live_server import ADMIN_KEY, CLIENT_KEY, Server
from tests.service.test_recognition import person, walker_clip


def aligned_clip(n: int, frames: int = 30) -> bytes:
    """An aligned uint8 [frames, 64, 44] clip, distinct for each ``n`` (no normalising work)."""
    clip = np.zeros((frames, 64, 44), np.uint8)
    clip[:, 4:60, 2 + n % 20 : 10 + n % 20 + n % 17] = 255
    clip[:, 4 + n % 9 : 12 + n % 9, 20:40] = 255
    buffer = io.BytesIO()
    np.save(buffer, clip)
    return buffer.getvalue()


def enroll_bulk(client: httpx.Client, first: int, count: int) -> None:
    files = [
        ("clips", (f"{n}.npy", aligned_clip(n), "application/octet-stream"))
        for n in range(first, first + count)
    ]
    manifest = [{"subject_id": f"s{n}"} for n in range(first, first + count)]
    answer = client.post("/gallery/samples", files=files, data={"manifest": json.dumps(manifest)})
    assert answer.status_code == 201, answer.text


def test_refresh_under_traffic_then_restart_and_refusals(tmp_path):
    model_a = toy_model(tmp_path / "a.onnx", version="a")
    model_b = toy_model(tmp_path / "b.onnx", version="b")
    server = Server(model_a, tmp_path / "data").start()
    try:
        client = httpx.Client(base_url=server.url, timeout=60)
        for first in range(0, 1000, 250):
            enroll_bulk(client, first, 250)

        answers: list[tuple[int, float, float, int, str | None]] = []  # client, start, end, …
        stop = threading.Event()

        def traffic(k: int) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as own:
                n = k
                while not stop.is_set():
                    sent = time.monotonic()
                    reply = own.post("/identify", files={"clip": ("c.npy", aligned_clip(n), "x")})
                    version = (
                        reply.json().get("model_version") if reply.status_code == 200 else None
                    )
                    answers.append((k, sent, time.monotonic(), reply.status_code, version))
                    n += 3

        threads = [threading.Thread(target=traffic, args=(k,)) for k in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        upload = {"model": ("b.onnx", model_b.read_bytes(), "application/octet-stream")}
        accepted = client.post("/admin/model", files=upload)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["refresh"]["total"] == 1000
        deadline = time.monotonic() + 120
        while (state := client.get("/admin/model").json())["refresh"]["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        finished = time.monotonic()
        assert state["refresh"]["state"] == "done", state
        assert state["refresh"]["done"] == 1000
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()

        statuses = [a[3] for a in answers]
        during = [a for a in answers if started <= a[2] and a[1] <= finished]
        print(
            f"refresh of 1,000 samples under traffic: {len(answers)} identify requests, "
            f"{len(during)} while it ran, {sum(s != 200 for s in statuses)} failed"
        )
        assert statuses == [200] * len(answers)
        assert during
        assert {a[4] for a in answers if a[2] < started} == {"a"}
        assert {a[4] for a in answers if a[1] > finished} == {"b"}
        for k in range(3):  # each client's requests are sequential: once "b", never "a" again
            versions = [a[4] for a in answers if a[0] == k]
            switch = versions.index("b")
            assert set(versions[:switch]) == {"a"}
            assert set(versions[switch:]) == {"b"}

        corrupt = {
            "model": ("bad.onnx", b"\x08\x07 definitely not onnx", "application/octet-stream")
        }
        refused = client.post("/admin/model", files=corrupt)
        assert refused.status_code == 422
        assert refused.json()["error"] == "invalid_model"
        assert client.post("/admin/model", data={"path": str(model_b)}).status_code == 409
        neither = client.post("/admin/model", data={})
        assert neither.status_code == 422
        assert "either a model file" in neither.json()["detail"]
        missing = client.post("/admin/model", data={"path": str(tmp_path / "nowhere.onnx")})
        assert missing.status_code == 422
        assert "no model file" in missing.json()["detail"]
        still = client.post("/identify", files={"clip": ("c.npy", aligned_clip(7), "x")}).json()
        assert still["model_version"] == "b"
        assert still["hits"][0]["subject_id"] == "s7"

        server.stop()  # same command line (--model a.onnx): comes back on b
        server.start()
        client = httpx.Client(base_url=server.url, timeout=60)
        assert client.get("/model").json()["version"] == "b"
        assert client.get("/model").json()["gallery_samples"] == 1000
    finally:
        server.stop()
    store = open_store(tmp_path / "data" / "gallery.db")
    assert len(store.embeddings("a").sample_ids) == 0
    assert len(store.embeddings("b").sample_ids) == store.sample_count() == 1000
    store.close()


def test_api_keys_roles_and_secure_default(tmp_path, monkeypatch, capsys):
    model = toy_model(tmp_path / "toy.onnx")
    keys = {
        "GAITLAB_ADMIN_KEYS": ADMIN_KEY,
        "GAITLAB_CLIENT_KEYS": f"other-client-key-000000,{CLIENT_KEY}",
    }
    server = Server(model, tmp_path / "data", env=keys).start()
    clip = {"clip": ("c.npy", person(0), "application/octet-stream")}
    endpoints = [
        ("POST", "/identify", {"files": clip}, "client"),
        ("POST", "/verify", {"files": clip, "data": {"subject_id": "p0"}}, "client"),
        ("GET", "/gallery/subjects", {}, "client"),
        ("GET", "/gallery/subjects/p0", {}, "client"),
        ("GET", "/model", {}, "client"),
        ("GET", "/metrics", {}, "client"),
        ("POST", "/gallery/subjects/p0/samples", {"files": clip}, "admin"),
        (
            "POST",
            "/gallery/samples",
            {"files": [("clips", clip["clip"])], "data": {"manifest": '[{"subject_id": "p1"}]'}},
            "admin",
        ),
        ("DELETE", "/gallery/subjects/p1", {}, "admin"),
        ("DELETE", "/gallery/subjects/p0/samples/999", {}, "admin"),
        ("GET", "/admin/model", {}, "admin"),
        ("POST", "/admin/model", {"data": {"path": str(model)}}, "admin"),
    ]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200  # probes need no key
            assert client.get("/readyz").status_code == 200
            for method, path, kwargs, role in endpoints:
                missing = client.request(method, path, **kwargs)
                assert missing.status_code == 401, (path, missing.text)
                assert missing.json()["error"] == "missing_api_key"
                assert missing.headers["www-authenticate"] == "Bearer"
                wrong = client.request(method, path, headers={"X-API-Key": "x" * 26}, **kwargs)
                assert wrong.status_code == 401, (path, wrong.text)
                assert wrong.json()["error"] == "invalid_api_key"
                as_client = client.request(
                    method, path, headers={"X-API-Key": CLIENT_KEY}, **kwargs
                )
                if role == "admin":
                    assert as_client.status_code == 403, (path, as_client.text)
                    assert as_client.json()["error"] == "forbidden"
                else:
                    assert as_client.status_code not in (401, 403), (path, as_client.text)
                as_admin = client.request(
                    method, path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, **kwargs
                )
                assert as_admin.status_code not in (401, 403), (path, as_admin.text)
    finally:
        server.stop()

    monkeypatch.delenv("GAITLAB_ADMIN_KEYS", raising=False)
    monkeypatch.delenv("GAITLAB_CLIENT_KEYS", raising=False)
    serve = ["serve", "--model", str(model), "--data-dir", str(tmp_path / "d2")]
    assert main([*serve, "--host", "0.0.0.0"]) == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in capsys.readouterr().err
    monkeypatch.setenv("GAITLAB_ADMIN_KEYS", "short")
    assert main(serve) == 2
    assert "at least 16 characters" in capsys.readouterr().err


def test_limits_metrics_and_structured_logs(tmp_path):
    env = {
        "GAITLAB_MAX_CONCURRENCY": "1",
        "GAITLAB_MAX_REQUEST_BYTES": "3000000",
        "GAITLAB_MAX_FRAMES": "40",
    }
    server = Server(toy_model(tmp_path / "toy.onnx"), tmp_path / "data", env=env).start()
    try:
        client = httpx.Client(base_url=server.url, timeout=60)
        assert (
            client.post(
                "/gallery/subjects/p0/samples", files={"clip": ("c.npy", person(0), "x")}
            ).status_code
            == 201
        )
        too_big = client.post("/identify", files={"clip": ("c.npy", b"\x00" * 3_100_000, "x")})
        assert too_big.status_code == 413
        assert too_big.json()["error"] == "request_too_large"
        too_long = client.post(
            "/identify", files={"clip": ("c.npy", aligned_clip(0, frames=41), "x")}
        )
        assert too_long.status_code == 413
        assert "at most 40" in too_long.json()["detail"]

        heavy = walker_clip(0, frames=24)  # raw 240×320 masks: decoding and aligning take time
        statuses: list[httpx.Response] = []

        def burst() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as own:
                statuses.append(own.post("/identify", files={"clip": ("c.npy", heavy, "x")}))

        for _ in range(5):  # until the burst overlaps
            threads = [threading.Thread(target=burst) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if any(r.status_code == 429 for r in statuses):
                break
        busy = [r for r in statuses if r.status_code == 429]
        assert busy, [r.status_code for r in statuses]
        assert busy[0].json()["error"] == "too_many_requests"
        assert busy[0].headers["retry-after"] == "1"
        assert {r.status_code for r in statuses} <= {200, 429}
        assert any(r.status_code == 200 for r in statuses)

        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        for expected in (
            'gaitlab_requests_total{method="POST",route="/identify",status="200"}',
            'gaitlab_requests_total{method="POST",route="/identify",status="429"}',
            'gaitlab_request_duration_seconds_bucket{le="0.5",method="POST",route="/identify"}',
            'gaitlab_step_duration_seconds_count{step="embed"}',
            'gaitlab_step_duration_seconds_count{step="search"}',
            'gaitlab_errors_total{kind="too_many_requests"}',
            'gaitlab_errors_total{kind="clip_too_large"} 1.0',
            'gaitlab_errors_total{kind="request_too_large"} 1.0',
            "gaitlab_gallery_samples 1.0",
            'gaitlab_model_info{provider="CPUExecutionProvider",version="toy-1"} 1.0',
            "gaitlab_refresh_running 0.0",
        ):
            assert expected in text, expected
        model = client.get("/model").json()
        assert model["provider"] == "CPUExecutionProvider"
        assert model["version"] == "toy-1"
    finally:
        server.stop()
    lines = [
        json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")
    ]
    access = [e for e in lines if e["logger"] == "gaitlab.access" and e["route"] == "/identify"]
    assert access
    assert {"time", "level", "method", "path", "status", "ms"} <= set(access[0])
    assert any(e["logger"] == "gaitlab.service" and e["message"] == "serving" for e in lines)


def test_sigkill_during_enrollments_loses_nothing_acknowledged(tmp_path):
    server = Server(toy_model(tmp_path / "toy.onnx"), tmp_path / "data").start()
    acknowledged: list[tuple[str, int]] = []
    failures: list[str] = []

    def enroll(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for n in range(10_000):
                subject = f"w{worker}-{n}"
                try:
                    answer = client.post(
                        f"/gallery/subjects/{subject}/samples",
                        files={"clip": ("c.npy", aligned_clip(n), "x")},
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if answer.status_code != 201:
                    failures.append(answer.text)
                    return
                acknowledged.append((subject, answer.json()["id"]))

    threads = [threading.Thread(target=enroll, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 150:
        time.sleep(0.01)
    os.kill(server.process.pid, signal.SIGKILL)
    for thread in threads:
        thread.join()
    server.process.wait()
    assert not failures

    server.start()
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        present = 0
        for subject, sample_id in acknowledged:
            found = client.get(f"/gallery/subjects/{subject}")
            if found.status_code == 200 and sample_id in [s["id"] for s in found.json()["samples"]]:
                present += 1
        listing = client.get("/gallery/subjects", params={"limit": 1000}).json()
        in_store = sum(item["samples"] for item in listing["items"])
        in_index = client.get("/model").json()["gallery_samples"]
    finally:
        server.stop()
    lost = len(acknowledged) - present
    print(
        f"SIGKILL during enrollments: {len(acknowledged)} acknowledged, {present} present, "
        f"{lost} lost; store {in_store} samples, index {in_index}"
    )
    assert lost == 0
    assert in_index == in_store >= len(acknowledged)
    store = open_store(tmp_path / "data" / "gallery.db")
    stored = store.embeddings("toy-1")
    assert len(stored.sample_ids) == store.sample_count() == in_store
    store.close()
