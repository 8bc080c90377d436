"""Errors → HTTP answers, in one place, all in one shape: ``{"error": code, "detail": text}``.

Domain errors carry their own status and code (``service.errors``); FastAPI's validation errors
and Starlette's HTTP errors (a broken multipart body, an unknown route, a wrong method) are
given a code from their status; anything unexpected is a 500 ``internal`` with nothing of its
insides. Every answer is counted by code in the metrics. ``error_responses`` documents a route's
real error answers in the OpenAPI document with the same schema.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope, Send

from service.api.schemas import ErrorBody
from service.errors import ServiceError

log = logging.getLogger("gaitlab.errors")

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}
DESCRIPTIONS = {
    400: "the request body could not be parsed (e.g. a broken multipart body)",
    401: "no API key, or a wrong one",
    403: "the API key's role may not do this",
    404: "no such subject, sample or route",
    408: "the request body arrived too slowly",
    409: "a model refresh is running, or the model is already active",
    413: "the request, the upload or the decoded clip is over a limit",
    415: "the upload is not a clip format the service reads",
    422: "a field, a clip, a manifest or a model that cannot be used as sent",
    429: "the embedding slots are all busy; retry after Retry-After seconds",
    503: "store_unavailable: the gallery store cannot be used now (its database is away, its "
    "file locked, read-only or its disk full; nothing was acknowledged); retry after "
    "Retry-After seconds. model_changed: another replica activated a model during the "
    "enrollment; retry",
}


def body(code: str, detail: str) -> dict:
    return ErrorBody(error=code, detail=detail).model_dump()


def error_responses(*statuses: int) -> dict:
    """OpenAPI ``responses`` for a route: each status with the project's error schema."""
    return {s: {"model": ErrorBody, "description": DESCRIPTIONS[s]} for s in sorted(statuses)}


async def send_error(send: Send, error: ServiceError) -> None:
    """Answer with ``error`` from pure ASGI code (the request gate). The connection is closed
    after it: the rest of a refused body is never read, and the socket is not kept alive."""
    payload = json.dumps(body(error.code, error.detail)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(payload)),
        (b"connection", b"close"),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


BODY_CUT = "gaitlab.body_cut"
"""Scope key the request gate sets when it cuts a body: it answers (and counts) that request
itself, so whatever the app makes of the cut body is neither sent nor counted."""


def error_answer(
    scope: Scope, status: int, code: str, detail: str, headers: dict | None, count
) -> JSONResponse:
    """The answer to an error raised while the app handles a request (the handlers below);
    counted unless the gate answers the request itself."""
    if not scope.get(BODY_CUT):
        count(code)
    return JSONResponse(status_code=status, content=body(code, detail), headers=headers or None)


def install_error_handlers(app: FastAPI, count=lambda code: None) -> None:
    """``count(code)`` is called for every error answer that is sent (the metrics)."""

    def answer(
        request: Request, status: int, code: str, detail: str, headers: dict | None = None
    ) -> JSONResponse:
        return error_answer(request.scope, status, code, detail, headers, count)

    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        return answer(request, error.status, error.code, error.detail, error.headers or None)

    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return answer(request, 422, "invalid_request", problems)

    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, str) else json.dumps(error.detail)
        code = HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
        return answer(request, error.status_code, code, detail, error.headers)

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"path": request.url.path[:256]})
        return answer(request, 500, "internal", "an internal error; it has been logged")

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
