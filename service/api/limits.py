"""Request limits, enforced before a request body is read (pure ASGI middleware).

- a request body over ``max_request_bytes`` → 413 (``Content-Length`` is required on POST: 411);
- more than ``max_concurrency`` embedding requests in flight (identify, verify, enroll) → 429
  with ``Retry-After``, instead of queueing work the machine cannot keep up with.

Per-upload size and frame limits are checked where uploads are read and decoded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

EMBEDDING_ROUTES = re.compile(
    r"^/(identify|verify|gallery/samples|gallery/subjects/[^/]+/samples)$"
)


async def send_json(send: Send, status: int, body: dict, headers: dict | None = None) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(payload)),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


class RequestLimits:
    def __init__(
        self,
        app: ASGIApp,
        max_request_bytes: int,
        max_concurrency: int,
        on_refusal: Callable[[str], None] = lambda reason: None,
    ):
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_concurrency = max_concurrency
        self.on_refusal = on_refusal
        self.in_flight = 0  # only touched on the event loop: no lock needed

    async def _refuse(self, send: Send, status: int, reason: str, detail: str, **headers) -> None:
        self.on_refusal(reason)
        await send_json(send, status, {"error": reason, "detail": detail}, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is None or not length.isdigit():
            await self._refuse(send, 411, "length_required", "send a Content-Length header")
            return
        if int(length) > self.max_request_bytes:
            detail = f"the request body exceeds {self.max_request_bytes} bytes"
            await self._refuse(send, 413, "request_too_large", detail)
            return
        if not EMBEDDING_ROUTES.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_concurrency:
            detail = f"{self.max_concurrency} requests are being processed; retry shortly"
            await self._refuse(send, 429, "too_many_requests", detail, **{"retry-after": "1"})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
