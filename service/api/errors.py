"""Domain errors → HTTP answers, in one place. Every answer has a JSON body
``{"error": <tag>, "detail": <what was wrong>}``, and is counted by kind in the metrics."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.api.auth import AuthError
from service.clips import ClipError, ClipTooLargeError, UnsupportedFormatError
from service.gallery.store import SampleNotFoundError, SubjectNotFoundError
from service.recognition import NoThresholdError
from service.refresh import AlreadyActiveError, ModelRefreshError, RefreshInProgressError


class UploadTooLargeError(ClipTooLargeError):
    """The request body itself exceeded the upload limit."""


def _status(error: Exception) -> int:
    if isinstance(error, AuthError):
        return error.status
    if isinstance(error, ClipTooLargeError):
        return 413
    if isinstance(error, UnsupportedFormatError):
        return 415
    if isinstance(error, SubjectNotFoundError | SampleNotFoundError):
        return 404
    if isinstance(error, RefreshInProgressError | AlreadyActiveError):
        return 409
    return 422


def _tag(error: Exception) -> str:
    if isinstance(error, ClipError | AuthError | ModelRefreshError):
        return error.reason
    if isinstance(error, SubjectNotFoundError):
        return "subject_not_found"
    if isinstance(error, SampleNotFoundError):
        return "sample_not_found"
    return "no_threshold"


def install_error_handlers(app: FastAPI) -> None:
    def count(request: Request, kind: str) -> None:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.error(kind)

    async def handle(request: Request, error: Exception) -> JSONResponse:
        detail = str(error).strip("'\"")
        if isinstance(error, SubjectNotFoundError):
            detail = f"no subject {detail!r} in the gallery"
        tag, status = _tag(error), _status(error)
        count(request, tag)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            status_code=status, content={"error": tag, "detail": detail}, headers=headers
        )

    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        count(request, "invalid_request")
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return JSONResponse(
            status_code=422, content={"error": "invalid_request", "detail": problems}
        )

    kinds = (ClipError, SubjectNotFoundError, SampleNotFoundError, NoThresholdError, AuthError)
    for kind in (*kinds, ModelRefreshError):
        app.add_exception_handler(kind, handle)
    app.add_exception_handler(RequestValidationError, invalid_request)
