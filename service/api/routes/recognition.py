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
    threshold: Annotated[
        float | None, Query(ge=-1.0, le=1.0, description="decide at this score instead")
    ] = None,
    fpir: Annotated[
        float | None,
        Query(
            gt=0.0,
            lt=1.0,
            description="the share of strangers' searches that may be given a name (default: "
            "the model card's, 0.01)",
        ),
    ] = None,
    pictures: Annotated[bool, Query(description="also return the probe's GEI and strip")] = False,
    exact: Annotated[
        bool, Query(description="search every sample, even where the index is approximate")
    ] = False,
) -> IdentifyResponse:
    """Who is this, or nobody? Ranked subjects (each by its best sample) and a decision: the
    top subject if its score reaches the threshold, else null. By default the threshold is set
    for this gallery (its subjects and their views) so that at most the promised share of
    strangers' searches (FPIR, 1 %) are given a name; ``rule`` says what it was set for."""
    data = await read_upload(clip, settings)
    result = await run_in_threadpool(recognizer.identify, data, top_k, threshold, exact, fpir)
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
