"""A fast lane for ``POST /identify``: plain, well-formed requests are answered without FastAPI's
per-request machinery; every other request goes on to FastAPI untouched.

FastAPI's routing, dependency solving, multipart parser and response model cost about as much
CPU per identify as everything else the service does besides the model (README "Speed").
Inside the request gate (which has authenticated the request and guards its body) this
middleware takes an identify request whose

- body has a ``Content-Length`` of at most ``LANE_MAX_BODY`` and is ``multipart/form-data``
  holding exactly one part, a file named ``clip`` (no other field);
- query holds at most ``top_k``, ``threshold`` and ``exact``, each once and in a canonical form
  within the route's bounds (``pictures`` is left to FastAPI);

reads the body through the gate, and answers with the same recognizer call, the same response
model and the same error bodies as the route. Anything it does not take in full — another
query, another body, a part it cannot read — is passed on to FastAPI, with the body replayed
when it has been read: FastAPI stays the one place that validates and explains. So every
answer is the route's own: the test suite compares the two lanes byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.auth import PASSED
from service.api.errors import error_answer
from service.api.schemas import IdentifyResponse
from service.errors import ServiceError

LANE_MAX_BODY = 1024 * 1024  # larger uploads: FastAPI spools them to disk as they arrive
PATH = "/identify"
_BOUNDARY = re.compile(  # a quoted boundary with backslash escapes: FastAPI's
    rb'multipart/form-data;\s*boundary=(?:"([^"\\]{1,70})"|([^";\s]{1,70}))$', re.I
)
# the part's head, line by line: every pattern matches in one pass (no backtracking on what a
# client sends), and only the header names are matched without regard to case, as Starlette
MAX_PART_HEAD = 1024
_DISPOSITION = re.compile(
    rb'(?i:content-disposition): form-data; name="clip"; filename="[^"\r\n]+"'
)
_PART_TYPE = re.compile(rb"(?i:content-type): [\x21-\x3a\x3c-\x7e]+(?:;[\x20-\x7e]*)?")
_INTEGER = re.compile(r"[1-9][0-9]{0,2}")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,2})(?:\.[0-9]{1,12})?")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


@dataclass(frozen=True)
class PlainQuery:
    top_k: int = 5
    threshold: float | None = None
    exact: bool = False


def plain_query(raw: bytes) -> PlainQuery | None:
    """The identify query when it is plain (see the module), else ``None``."""
    if not raw:
        return PlainQuery()
    try:
        pairs = [pair.split("=", 1) for pair in raw.decode("ascii").split("&")]
    except UnicodeDecodeError:
        return None
    values = {}
    for pair in pairs:
        if len(pair) != 2 or pair[0] not in ("top_k", "threshold", "exact") or pair[0] in values:
            return None
        values[pair[0]] = pair[1]
    top_k, threshold, exact = values.get("top_k"), values.get("threshold"), values.get("exact")
    if top_k is not None and not (_INTEGER.fullmatch(top_k) and int(top_k) <= 100):
        return None
    if threshold is not None and not (
        _DECIMAL.fullmatch(threshold) and -1.0 <= float(threshold) <= 1.0
    ):
        return None
    if exact is not None and exact not in _BOOLEANS:
        return None
    return PlainQuery(
        int(top_k) if top_k else 5,
        float(threshold) if threshold is not None else None,
        _BOOLEANS[exact] if exact else False,
    )


def single_clip(body: bytes, boundary: bytes) -> bytes | None:
    """The file of a multipart body holding exactly one part, a file named ``clip``; else
    ``None``."""
    opening = b"--" + boundary + b"\r\n"
    closing = b"\r\n--" + boundary + b"--"
    if not body.startswith(opening):
        return None
    end = body.find(closing, len(opening))
    if end < 0 or body[end + len(closing) :] not in (b"", b"\r\n"):
        return None
    head_end = body.find(b"\r\n\r\n", len(opening), min(end, len(opening) + MAX_PART_HEAD))
    if head_end < 0:
        return None
    lines = body[len(opening) : head_end].split(b"\r\n")
    if len(lines) > 2 or not _DISPOSITION.fullmatch(lines[0]):
        return None
    if len(lines) == 2 and not _PART_TYPE.fullmatch(lines[1]):
        return None
    clip = body[head_end + 4 : end]
    if b"\r\n--" + boundary in clip:  # a second part
        return None
    return clip


class IdentifyLane:
    """ASGI middleware, innermost of the service's own (inside the gate and the metrics).
    ``service``: the FastAPI app, whose state holds the recognizer and settings; ``routes``:
    the API's routes, whose ``/identify`` labels the lane's requests in the metrics."""

    def __init__(self, app: ASGIApp, service, routes: list, count=lambda code: None):
        self.app, self.service, self.count = app, service, count
        self.route = next(r for r in routes if r.path == PATH and "POST" in r.methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        boundary = self._boundary(scope) if scope["type"] == "http" else None
        query = plain_query(scope["query_string"]) if boundary else None
        if query is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # the metrics label it (refusals too) as the route would
        body, complete = await _whole_body(receive)
        clip = single_clip(body, boundary) if complete else None
        if clip is None or len(clip) > self.service.state.settings.max_upload_bytes:
            del scope["route"]  # FastAPI's router sets it
            await self.app(scope, _replay(body, complete, receive), send)
            return
        recognizer = self.service.state.recognizer
        try:
            result = await run_in_threadpool(
                recognizer.identify, clip, query.top_k, query.threshold, query.exact
            )
        except ServiceError as error:
            answer = error_answer(
                scope, error.status, error.code, error.detail, error.headers, self.count
            )
            await answer(scope, receive, send)
            return
        found = IdentifyResponse.of(result).model_dump_json()
        answer = Response(found, media_type="application/json")
        await answer(scope, receive, send)

    def _boundary(self, scope: Scope) -> bytes | None:
        """The multipart boundary of a request this lane may take, else ``None``."""
        if scope["method"] != "POST" or scope["path"] != PATH:
            return None
        if scope.get(PASSED) not in ("client", "admin"):
            return None  # FastAPI explains
        length = kind = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if length is not None:
                    return None
                length = value
            elif name == b"content-type":
                if kind is not None:
                    return None
                kind = value
            elif name == b"transfer-encoding":
                return None
        if not (length and length.isdigit() and int(length) <= LANE_MAX_BODY and kind):
            return None
        found = _BOUNDARY.match(kind)
        return (found.group(1) or found.group(2)) if found else None


async def _whole_body(receive: Receive) -> tuple[bytes, bool]:
    """(the body read through the gate, whether it is whole: not if the client left first)."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks), True


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """``receive`` that first gives back what was read, then goes on with ``receive``."""
    pending = [{"type": "http.request", "body": body, "more_body": not complete}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
