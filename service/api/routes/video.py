"""Colour video of people walking: POST /identify/video and
POST /gallery/subjects/{id}/samples/video (docs/video.md).

Both run the video pipeline in its sandbox (``service.people``); the second re-runs it on the
same upload (the pipeline is deterministic: a track keeps its number) and enrolls the chosen
person, so no video or track is kept between requests.
"""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

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
from service.api.routes.gallery import parse_metadata
from service.api.routes.recognition import probe_pictures
from service.api.schemas import (
    DroppedTrack,
    IdentifyResponse,
    SamplePublic,
    VideoIdentifyResponse,
    VideoInfo,
    VideoTrack,
)
from service.people.identify import VideoPeople

router = APIRouter(
    tags=["video"], responses=error_responses(400, 401, 403, 408, 413, 415, 422, 429)
)
Rotate = Literal["auto", "0", "90", "180", "270"]
ROTATE_HELP = "degrees clockwise that make people upright; auto: found per person"


async def get_video(request: Request) -> VideoPeople:
    return request.app.state.video


VideoDep = Annotated[VideoPeople, Depends(get_video)]


def _turns(rotate: Rotate) -> int | None:
    return None if rotate == "auto" else int(rotate) // 90


@router.post(
    "/identify/video",
    **declare("client", embeds=True, body="one_clip"),
    response_model=VideoIdentifyResponse,
)
async def identify_video(
    recognizer: RecognizerDep,
    settings: SettingsDep,
    video: VideoDep,
    clip: Annotated[UploadFile, File(description="a colour video (MP4, MOV, WebM, AVI, …)")],
    top_k: TopK = 5,
    threshold: Threshold = None,
    fpir: Fpir = None,
    rotate: Annotated[Rotate, Query(description=ROTATE_HELP)] = "auto",
    pictures: Annotated[
        bool, Query(description="also return each person's thumbnail, GEI and strip")
    ] = False,
) -> VideoIdentifyResponse:
    """Who walks in this video? Every person found is tracked, cut out and identified as
    ``POST /identify`` would identify their silhouettes; people tracked too briefly, or never
    wholly in view, are listed in ``dropped`` with the reason."""
    data = await read_upload(clip, settings)
    result = await run_in_threadpool(
        video.identify, recognizer, data, _turns(rotate), top_k, threshold, fpir
    )
    tracks = []
    for found in result.tracks:
        probe = (
            await run_in_threadpool(probe_pictures, found.result.silhouettes) if pictures else None
        )
        thumbnail = (
            "data:image/jpeg;base64," + base64.b64encode(found.thumbnail).decode()
            if pictures
            else None
        )
        track = found.track
        tracks.append(
            VideoTrack(
                id=track["id"],
                frames=track["frames"],
                boxes=track["boxes"],
                clip_frames=track["clip_frames"],
                identify=IdentifyResponse.of(found.result, probe),
                thumbnail=thumbnail,
            )
        )
    return VideoIdentifyResponse(
        video=VideoInfo(**result.video),
        tracks=tracks,
        dropped=[DroppedTrack(**d) for d in result.dropped],
    )


@router.post(
    "/gallery/subjects/{subject_id}/samples/video",
    tags=["gallery"],
    **declare("admin", embeds=True, body="one_clip"),
    status_code=201,
    response_model=SamplePublic,
    responses=error_responses(404),
)
async def enroll_from_video(
    recognizer: RecognizerDep,
    settings: SettingsDep,
    video: VideoDep,
    subject_id: Annotated[str, Path(pattern=SUBJECT_ID)],
    clip: Annotated[UploadFile, File(description="the video POST /identify/video was sent")],
    track: Annotated[int, Form(ge=1, le=10_000, description="the person's track id")],
    rotate: Annotated[Rotate, Form(description=ROTATE_HELP)] = "auto",
    condition: Annotated[str | None, Form(max_length=32)] = None,
    view: Annotated[str | None, Form(max_length=32)] = None,
    metadata: Annotated[str | None, Form(max_length=4096, description="a JSON object")] = None,
) -> SamplePublic:
    """Enroll one person of a video (``track``, as ``POST /identify/video`` numbered them) for
    ``subject_id``. Answered once it is on disk."""
    extra = parse_metadata(metadata)
    data = await read_upload(clip, settings)
    sample = await run_in_threadpool(
        video.enroll, recognizer, data, track, subject_id, _turns(rotate), condition, view, extra
    )
    return SamplePublic(**sample.__dict__)
