"""service.api.fast_lane: plain identify requests answered without FastAPI's machinery, with
answers byte for byte those of the route; everything else passed on to FastAPI untouched."""

from __future__ import annotations

import asyncio

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
    metrics = served.get("/metrics").text
    assert 'gaitlab_requests_total{method="POST",route="/identify"' in metrics


def test_the_lane_answers_plain_requests_itself_and_replays_the_rest(tmp_path):
    """In process: which requests reach FastAPI, and what FastAPI then reads."""
    model = toy_model(tmp_path / "toy.onnx", threshold=0.99)
    app = create_app(Settings.from_env(data_dir=tmp_path / "data", model=model, device="cpu"))
    reached = []

    async def fastapi(scope, receive, send):  # stands in for the rest of the stack
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message["body"])
            more = message["more_body"]
        reached.append(b"".join(chunks))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def post(body: bytes, kind: bytes, query: bytes = b"") -> int:
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
            extra, extra_kind = multipart({"clip": ("c.npy", person(1))}, {"note": "x"})
            assert await post(extra, extra_kind) == 299
            assert await post(plain, kind, b"pictures=true") == 299
            assert reached == [extra, plain]  # FastAPI reads the very bytes sent

    asyncio.run(run())
