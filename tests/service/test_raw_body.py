"""POST /identify with the clip as the raw request body, beside the multipart form: the same
answer, and bad bodies refused with the API's error shape (real uvicorn, toy model)."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import toy_model
from tests.service.live_server import MAX_UPLOAD, Server
from tests.service.test_recognition import person


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    server = Server(toy_model(folder / "toy.onnx", threshold=0.99), folder / "data").start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for n in range(3):
            files = {"clip": ("c.npy", person(n), "application/octet-stream")}
            assert client.post(f"/gallery/subjects/p{n}/samples", files=files).status_code == 201
        yield client
    server.stop()


def test_a_raw_body_answers_as_the_form_does(client):
    raw = client.post("/identify", content=person(1), headers={"Content-Type": "application/x-npy"})
    form = client.post("/identify", files={"clip": ("p.npy", person(1), "application/x-npy")})
    assert raw.status_code == form.status_code == 200
    assert raw.headers["content-type"] == "application/json"
    assert raw.json()["decision"] == "p1"
    assert raw.json() == form.json()
    assert (
        client.post(
            "/identify?top_k=1", content=person(2), headers={"Content-Type": "video/mp4"}
        ).json()["hits"][0]["subject_id"]
        == "p2"
    )  # the type names a family; bytes decide


@pytest.mark.parametrize(
    ("headers", "body", "status", "error"),
    [
        ({}, b"\x93NUMPY", 415, "unsupported_format"),  # no content type at all
        ({"Content-Type": "text/plain"}, b"walk", 415, "unsupported_format"),
        ({"Content-Type": "application/x-npy"}, b"not an array", 415, "unsupported_format"),
        ({"Content-Type": "application/x-npy"}, b"\x93NUMPY\x01\x00garbage", 422, "corrupt_clip"),
        ({"Content-Type": "application/x-npy"}, b"", 422, "corrupt_clip"),
    ],
)
def test_bad_raw_bodies_are_refused_with_words(client, headers, body, status, error):
    answer = client.post("/identify", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error
    assert answer.json()["detail"]


def test_a_raw_body_over_the_limit_is_refused_as_it_streams(client):
    def too_much():
        yield b"\x93NUMPY"
        for _ in range(MAX_UPLOAD // 65536 + 2):
            yield bytes(65536)

    answer = client.post(
        "/identify", content=too_much(), headers={"Content-Type": "application/x-npy"}
    )
    assert answer.status_code == 413
    assert answer.json()["error"] in ("clip_too_large", "request_too_large")


def test_a_form_without_the_clip_field_says_so(client):
    answer = client.post("/identify", files={"walk": ("p.npy", person(1), "application/x-npy")})
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "missing_clip",
        "detail": "send the clip in a form field named clip",
    }
