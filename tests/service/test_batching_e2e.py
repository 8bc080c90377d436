"""Cross-request micro-batching against a real server (uvicorn, the toy ONNX model, SQLite):
concurrent requests share model calls, each gets the answer it would have got alone, a bad
upload among them fails alone, and a request alone never waits for company."""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest

from tests.helpers import toy_model
from tests.service.live_server import Server
from tests.service.test_recognition import person, walker_clip

WAIT_MS = 5000  # the worker's longest wait for requests still decoding: long, to be visible


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batching")
    env = {"GAITLAB_BATCH_WAIT_MS": str(WAIT_MS), "GAITLAB_MAX_CONCURRENCY": "16"}
    server = Server(toy_model(folder / "toy.onnx", threshold=0.99), folder / "data", env=env)
    server.start()
    client = httpx.Client(base_url=server.url, timeout=60)
    for n in range(4):
        files = {"clip": ("c.npy", person(n), "application/octet-stream")}
        assert client.post(f"/gallery/subjects/p{n}/samples", files=files).status_code == 201
    yield server
    server.stop()


def identify(client: httpx.Client, clip: bytes) -> httpx.Response:
    files = {"clip": ("c.npy", clip, "application/octet-stream")}
    return client.post("/identify", files=files, params={"top_k": 4, "threshold": -1.0})


def batches(client: httpx.Client) -> tuple[float, float]:
    """(model calls, calls of one clip) from ``/metrics``."""
    text = client.get("/metrics").text
    total = float(re.search(r"^gaitlab_embed_batch_clips_count (\S+)", text, re.M).group(1))
    single = re.search(r'^gaitlab_embed_batch_clips_bucket\{le="1.0"\} (\S+)', text, re.M)
    return total, float(single.group(1))


def probes() -> list[bytes]:
    """Eight 8-frame probes: the enrolled people and strangers."""
    return [person(n % 4) for n in range(4)] + [walker_clip(3 * n, width=20) for n in range(4)]


def test_concurrent_requests_share_model_calls_and_get_their_own_answers(server):
    client = httpx.Client(base_url=server.url, timeout=60)
    alone = [identify(client, clip).json() for clip in probes()]
    before = batches(client)
    answers: list = [None] * 9
    start = threading.Barrier(9)

    def request(i: int) -> None:
        own = httpx.Client(base_url=server.url, timeout=60)
        start.wait()
        clip = probes()[i] if i < 8 else b"not a clip at all"
        answers[i] = identify(own, clip)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers[8].status_code == 415, answers[8].text  # the bad upload fails alone
    for single, batched in zip(alone, answers[:8], strict=True):
        assert batched.status_code == 200, batched.text
        got = batched.json()
        assert [h["subject_id"] for h in got["hits"]] == [h["subject_id"] for h in single["hits"]]
        for a, b in zip(single["hits"], got["hits"], strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)
    calls, singles = (after - was for after, was in zip(batches(client), before, strict=True))
    assert calls < 8  # eight clips, fewer model calls: requests were embedded together
    assert calls > singles  # at least one call held several requests' clips


def test_a_request_alone_never_waits_for_company(server):
    client = httpx.Client(base_url=server.url, timeout=60)
    identify(client, person(1))  # warm
    started = time.monotonic()
    assert identify(client, person(2)).status_code == 200
    assert time.monotonic() - started < WAIT_MS / 1000 / 2
