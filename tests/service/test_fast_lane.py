"""service.api.fast_lane: plain identify requests answered without FastAPI's machinery, with
answers byte for byte those of the route; everything else passed on to FastAPI untouched."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from service.api.auth import PASSED
from service.api.fast_lane import IdentifyLane, PlainQuery, plain_query, single_clip
from service.api.routes import recognition
from service.main import create_app
from service.settings import Settings
from tests.helpers import toy_model
from tests.service.live_server import Server
from tests.service.test_recognition import person, walker_clip


def multipart(files: dict, data: dict | None = None) -> tuple[bytes, bytes]:
    """(body, content-type) as httpx sends them."""
    request = httpx.Request("POST", "http://x/identify", files=files, data=data)
    return request.read(), request.headers["content-type"].encode()


def boundary_of(content_type: bytes) -> bytes:
    return content_type.split(b"boundary=")[1]


def test_plain_queries_are_taken_and_anything_else_is_left_to_fastapi():
    assert plain_query(b"") == PlainQuery()
    assert plain_query(b"top_k=100&threshold=-0.25&exact=true") == PlainQuery(100, -0.25, True)
    assert plain_query(b"exact=0&top_k=1") == PlainQuery(1, None, False)
    for raw in (
        b"top_k=0",  # out of bounds: FastAPI's 422
        b"top_k=101",
        b"top_k=05",
        b"top_k=5&top_k=6",  # twice
        b"threshold=1.5",
        b"threshold=%2D0.5",  # encoded
        b"threshold=nan",
        b"exact=yes",  # FastAPI reads more spellings: it decides
        b"pictures=true",
        b"other=1",
        b"top_k",
        b"\xff=1",
    ):
        assert plain_query(raw) is None, raw


def test_the_one_clip_part_is_cut_out_and_any_other_body_is_not():
    clip = b"\x93NUMPY..." + b"\r\n--not-the-boundary\r\n" + bytes(range(256))
    body, kind = multipart({"clip": ("c.npy", clip, "application/octet-stream")})
    assert single_clip(body, boundary_of(kind)) == clip
    body, kind = multipart({"clip": ("c.npy", clip)})  # no Content-Type of its own
    assert single_clip(body, boundary_of(kind)) == clip

    body, kind = multipart({"clip": ("c.npy", clip)}, data={"note": "x"})
    assert single_clip(body, boundary_of(kind)) is None  # another field
    body, kind = multipart({"video": ("c.npy", clip)})
    assert single_clip(body, boundary_of(kind)) is None  # not named clip
    body, kind = multipart({"clip": ("c.npy", clip)})
    boundary = boundary_of(kind)
    assert single_clip(b"preamble\r\n" + body, boundary) is None
    assert single_clip(body[:-10], boundary) is None  # cut short
    no_name = body.replace(b'; filename="c.npy"', b"")
    assert single_clip(no_name, boundary) is None  # a form field, not a file: FastAPI's 422


@pytest.fixture
def served(tmp_path):
    model = toy_model(tmp_path / "toy.onnx", threshold=0.99)
    server = Server(model, tmp_path / "data").start()
    client = httpx.Client(base_url=server.url, timeout=30)
    for n in range(3):
        answer = client.post(f"/gallery/subjects/p{n}/samples", files={"clip": ("c", person(n))})
        assert answer.status_code == 201
    yield client
    server.stop()


@pytest.mark.parametrize(
    ("clip", "params"),
    [
        (person(1), {}),
        (person(2), {"top_k": "2", "threshold": "0.5", "exact": "true"}),
        (person(7), {"threshold": "-1"}),
        (b"not a clip at all", {}),  # the recognizer's errors: 415, 422
        (b"", {}),
        (walker_clip(0, frames=2), {}),
    ],
)
def test_both_lanes_answer_byte_for_byte_alike(served, clip, params):
    lane = served.post("/identify", params=params, files={"clip": ("c.npy", clip)})
    # an extra form field, which the route ignores, sends the request through FastAPI
    route = served.post(
        "/identify", params=params, files={"clip": ("c.npy", clip)}, data={"note": "x"}
    )
    assert lane.status_code == route.status_code
    assert lane.headers["content-type"] == route.headers["content-type"]
    assert lane.content == route.content
    if lane.status_code == 200:
        assert lane.json()["hits"]
    counted = re.findall(
        r'gaitlab_requests_total\{method="POST",route="([^"]+)"', served.get("/metrics").text
    )
    assert "/identify" in counted
    assert "unmatched" not in counted  # both labelled as the route


def test_the_lane_answers_plain_requests_itself_and_replays_the_rest(tmp_path):
    """In process: which requests reach FastAPI, and what FastAPI then reads."""
    model = toy_model(tmp_path / "toy.onnx", threshold=0.99)
    settings = Settings.from_env(
        data_dir=tmp_path / "data", model=model, device="cpu", max_upload_bytes=700_000
    )
    app = create_app(settings)
    reached = []  # what FastAPI read: (body, the last message's type)

    async def fastapi(scope, receive, send):  # stands in for the rest of the stack
        chunks, message = [], {"more_body": True}
        while message.get("more_body"):
            message = await receive()
            chunks.append(message.get("body", b""))
        reached.append((b"".join(chunks), message["type"]))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    labels = []  # the route label the metrics would see while the body is read

    async def post(body: bytes, kind: bytes, query: bytes = b"", leaves: bool = False) -> int:
        lane = IdentifyLane(fastapi, app, recognition.router.routes)
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/identify",
            "query_string": query,
            "headers": [(b"content-type", kind), (b"content-length", b"%d" % len(body))],
            PASSED: "client",
        }
        pieces = [body[:100], body[100:]]  # the body in two chunks, as a socket gives it

        async def receive():
            labels.append(getattr(scope.get("route"), "path", None))
            if leaves and len(pieces) == 1:  # the client goes after its first chunk
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": pieces.pop(0), "more_body": bool(pieces)}

        statuses = []

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await lane(scope, receive, send)
        return statuses[0]

    async def run():
        async with app.router.lifespan_context(app):
            plain, kind = multipart({"clip": ("c.npy", person(1))})
            assert await post(plain, kind) == 200
            assert await post(plain, kind, b"top_k=2") == 200
            assert reached == []
            assert set(labels) == {"/identify"}  # a refusal mid-body is labelled as the route's
            extra, extra_kind = multipart({"clip": ("c.npy", person(1))}, {"note": "x"})
            assert await post(extra, extra_kind) == 299
            assert await post(plain, kind, b"pictures=true") == 299
            assert reached == [(extra, "http.request"), (plain, "http.request")]  # as sent
            large, large_kind = multipart({"clip": ("c.npy", b"x" * 800_000)})
            assert await post(large, large_kind) == 299  # over max_upload_bytes: FastAPI's 413
            assert await post(plain, kind, leaves=True) == 299
            assert reached[-1] == (plain[:100], "http.disconnect")  # what came, then the leaving
            escaped = kind.replace(b"boundary=", b'boundary="') + b'\\x"'
            assert await post(plain, escaped) == 299  # a quoted boundary with escapes
            assert len(reached) == 5

    asyncio.run(run())


def test_part_heads_are_read_in_one_pass_whatever_a_client_sends():
    """A pattern that backtracks on a part's head froze the event loop for seconds on 12 KB."""
    boundary = boundary_of(multipart({"clip": ("c.npy", b"data")})[1])
    head = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="clip"; filename="c"'
    tail = b"\r\n\r\ndata\r\n--" + boundary + b"--\r\n"
    assert single_clip(head + b"\r\nContent-Type: a/b; x=1" + tail, boundary) == b"data"
    for hostile in (b"\r\nContent-Type: a" + b";" * 50_000 + b"\t", b"\r\nX: " + b"a" * 50_000):
        started = time.perf_counter()
        assert single_clip(head + hostile + tail, boundary) is None
        assert time.perf_counter() - started < 0.5  # quadratic would take minutes
    upper = head.replace(b'name="clip"', b'name="CLIP"')
    assert single_clip(upper + tail, boundary) is None  # Starlette matches names exactly
    cased = head.replace(b"Content-Disposition", b"CONTENT-DISPOSITION")
    assert single_clip(cased + tail, boundary) == b"data"  # header names: any case
