"""POST /identify and POST /verify."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from service.api.auth import CLIENT
from service.api.deps import SUBJECT_ID, RecognizerDep, SettingsDep, read_upload
from service.api.errors import error_responses
from service.api.gate import BODY_ONE_CLIP, EMBEDS
from service.api.schemas import IdentifyResponse, ProbePictures, VerifyResponse
from service.pictures import render

router = APIRouter(
    tags=["recognition"],
    dependencies=[CLIENT, EMBEDS, BODY_ONE_CLIP],
    responses=error_responses(400, 401, 403, 408, 413, 415, 422, 429),
)


@router.post("/identify", response_model=IdentifyResponse)
async def identify(
    recognizer: RecognizerDep,
    settings: SettingsDep,
    clip: Annotated[
        UploadFile, File(description="silhouette clip (zip, npy/npz, GIF/TIFF, video)")
    ],
    top_k: Annotated[int, Query(ge=1, le=100)] = 5,
    threshold: Annotated[float | None, Query(ge=-1.0, le=1.0)] = None,
    pictures: Annotated[bool, Query(description="also return the probe's GEI and strip")] = False,
    exact: Annotated[
        bool, Query(description="search every sample, even where the index is approximate")
    ] = False,
) -> IdentifyResponse:
    """Who is this? Ranked subjects (each by its best sample) and a decision: the top subject if
    its score passes the threshold (default: the model card's 1 % FAR threshold), else null."""
    data = await read_upload(clip, settings)
    result = await run_in_threadpool(recognizer.identify, data, top_k, threshold, exact)
    pictured = await run_in_threadpool(probe_pictures, result.silhouettes) if pictures else None
    return IdentifyResponse.of(result, pictured)


@router.post("/verify", response_model=VerifyResponse, responses=error_responses(404))
async def verify(
    recognizer: RecognizerDep,
    settings: SettingsDep,
    clip: Annotated[UploadFile, File()],
    subject_id: Annotated[str, Form(pattern=SUBJECT_ID)],
    threshold: Annotated[float | None, Query(ge=-1.0, le=1.0)] = None,
    pictures: Annotated[bool, Query(description="also return the probe's GEI and strip")] = False,
) -> VerifyResponse:
    """Is this ``subject_id``? The subject's best sample score, accepted at the threshold."""
    data = await read_upload(clip, settings)
    result = await run_in_threadpool(recognizer.verify, data, subject_id, threshold)
    return VerifyResponse(
        subject_id=result.subject_id,
        score=result.score,
        accepted=result.accepted,
        threshold=result.threshold,
        frames=result.frames,
        model_version=result.model_version,
        probe=await run_in_threadpool(probe_pictures, result.silhouettes) if pictures else None,
    )


def probe_pictures(silhouettes) -> ProbePictures:
    def data_url(kind: str) -> str:
        return "data:image/png;base64," + base64.b64encode(render(silhouettes, kind)).decode()

    return ProbePictures(gei=data_url("gei"), strip=data_url("strip"))
