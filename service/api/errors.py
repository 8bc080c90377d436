"""Domain errors → HTTP answers, in one place. Every answer has a JSON body
``{"error": <tag>, "detail": <what was wrong>}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.clips import ClipError, ClipTooLargeError, UnsupportedFormatError
from service.gallery.store import SampleNotFoundError, SubjectNotFoundError
from service.recognition import NoThresholdError


class UploadTooLargeError(ClipTooLargeError):
    """The request body itself exceeded the upload limit."""


def _status(error: Exception) -> int:
    if isinstance(error, ClipTooLargeError):
        return 413
    if isinstance(error, UnsupportedFormatError):
        return 415
    if isinstance(error, SubjectNotFoundError | SampleNotFoundError):
        return 404
    return 422


def _tag(error: Exception) -> str:
    if isinstance(error, ClipError):
        return error.reason
    if isinstance(error, SubjectNotFoundError):
        return "subject_not_found"
    if isinstance(error, SampleNotFoundError):
        return "sample_not_found"
    return "no_threshold"


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, error: Exception) -> JSONResponse:
        detail = str(error).strip("'\"")
        if isinstance(error, SubjectNotFoundError):
            detail = f"no subject {detail!r} in the gallery"
        return JSONResponse(
            status_code=_status(error), content={"error": _tag(error), "detail": detail}
        )

    for kind in (ClipError, SubjectNotFoundError, SampleNotFoundError, NoThresholdError):
        app.add_exception_handler(kind, handle)
