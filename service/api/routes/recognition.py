"""POST /identify and POST /verify.

``/identify`` takes the clip as the raw request body (``Content-Type: application/x-npy`` and
the like: the conventional way in for an inference API, one copy, no form parsing) or as the
field ``clip`` of a multipart form (browsers, ``curl -F``); ``/verify`` takes a form (the
clip and the claimed ``subject_id``)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as FormFile

from service.api.deps import (
    SUBJECT_ID,
    Fpir,
    RecognizerDep,
    SettingsDep,
    Threshold,
    TopK,
    read_upload,
)
from service.api.errors import error_responses
from service.api.policy import declare
from service.api.schemas import IdentifyResponse, ProbePictures, VerifyResponse
from service.clip_limits import ClipError, ClipTooLargeError, UnsupportedFormatError
from service.pictures import render
from service.settings import Settings


class MissingClipError(ClipError):
    code = "missing_clip"


router = APIRouter(
    tags=["recognition"], responses=error_responses(400, 401, 403, 408, 413, 415, 422, 429)
)
ONE_CLIP = declare("client", embeds=True, body="one_clip")


CLIP_TYPES = (
    "application/x-npy",
    "application/zip",
    "application/octet-stream",
    "image/gif",
    "image/tiff",
    "video/mp4",
    "video/x-msvideo",
    "video/x-matroska",
    "video/webm",
)
"""Content types a raw clip body may come as (its format is read from its bytes anyway)."""
_BINARY = {"schema": {"type": "string", "format": "binary"}}
CLIP_BODY = {
    "requestBody": {
        "required": True,
        "description": "the clip as the whole body (its format is read from its bytes), or a "
        "multipart form with the clip in the field ``clip`` (browsers, ``curl -F``)",
        "content": {
            **dict.fromkeys(CLIP_TYPES, _BINARY),
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"clip": {"type": "string", "format": "binary"}},
                    "required": ["clip"],
                }
            },
        },
    }
}


async def read_clip(request: Request, settings: Settings) -> bytes:
    """The clip of a request: the raw body, or the ``clip`` field of a multipart form; more
    than the configured limit is refused without being kept (the gate stops the body too)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8)
        clip = form.get("clip")
        if not isinstance(clip, FormFile):  # Starlette's: FastAPI's is a subclass of it
            raise MissingClipError("send the clip in a form field named clip")
        return await read_upload(clip, settings)
    if not kind and request.headers.get("content-length", "0") == "0":
        raise MissingClipError("no clip: send it as the body, or as the field clip of a form")
    if kind not in CLIP_TYPES:
        raise UnsupportedFormatError(
            f"a clip is sent as the body with a clip's content type ({', '.join(CLIP_TYPES)}) "
            f"or as the field clip of a multipart form; got {kind or 'no content type'}"
        )
    data = await request.body()  # the gate has held it to the route's limit as it came
    if len(data) > settings.max_upload_bytes:
        raise ClipTooLargeError(f"the upload exceeds {settings.max_upload_bytes} bytes")
    return data


@router.post(
    "/identify",
    response_model=IdentifyResponse,
    **declare("client", embeds=True, body="one_clip", **CLIP_BODY),
)
async def identify(
    request: Request,
    recognizer: RecognizerDep,
    settings: SettingsDep,
    top_k: TopK = 5,
    threshold: Threshold = None,
    fpir: Fpir = None,
    pictures: Annotated[bool, Query(description="also return the probe's GEI and strip")] = False,
    exact: Annotated[
        bool, Query(description="search every sample, even where the index is approximate")
    ] = False,
) -> IdentifyResponse:
    """Who is this, or nobody? Ranked subjects (each by its best sample) and a decision: the
    top subject if its score reaches the threshold, else null. By default the threshold is set
    for this gallery (its subjects and their views) so that at most the promised share of
    strangers' searches (FPIR, 1 %) are given a name; ``rule`` says what it was set for."""
    data = await read_clip(request, settings)
    result = await run_in_threadpool(recognizer.identify, data, top_k, threshold, exact, fpir)
    pictured = await run_in_threadpool(probe_pictures, result.silhouettes) if pictures else None
    answer = IdentifyResponse.of(result, pictured)  # validated once, as it is built
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post("/verify", response_model=VerifyResponse, responses=error_responses(404), **ONE_CLIP)
async def verify(
    recognizer: RecognizerDep,
    settings: SettingsDep,
    clip: Annotated[UploadFile, File()],
    subject_id: Annotated[str, Form(pattern=SUBJECT_ID)],
    threshold: Threshold = None,
    pictures: Annotated[bool, Query(description="also return the probe's GEI and strip")] = False,
) -> VerifyResponse:
    """Is this ``subject_id``? The subject's best sample score, accepted at the card's per-pair
    threshold (1 % of stranger pairs; measured on same-view and cross-view pairs alike)."""
    data = await read_upload(clip, settings)
    result = await run_in_threadpool(recognizer.verify, data, subject_id, threshold)
    pictured = await run_in_threadpool(probe_pictures, result.silhouettes) if pictures else None
    return VerifyResponse.of(result, pictured)


def probe_pictures(silhouettes) -> ProbePictures:
    def data_url(kind: str) -> str:
        return "data:image/png;base64," + base64.b64encode(render(silhouettes, kind)).decode()

    return ProbePictures(gei=data_url("gei"), strip=data_url("strip"))
