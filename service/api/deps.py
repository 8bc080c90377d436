"""Dependencies shared by the routes.

They are ``async`` although they only read app state: FastAPI runs a plain ``def`` dependency
in the threadpool, a thread hop per dependency per request that cost more than the search.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, UploadFile

from models.proof import Serving
from service.clip_limits import ClipTooLargeError
from service.metrics import Metrics
from service.recognition import Recognizer
from service.refresh import ModelRefresher
from service.replication import ChangeFollower
from service.self_test import SelfTest
from service.settings import Settings


async def get_recognizer(request: Request) -> Recognizer:
    return request.app.state.recognizer


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_refresher(request: Request) -> ModelRefresher:
    return request.app.state.refresher


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_self_test(request: Request) -> SelfTest:
    return request.app.state.self_test


async def get_follower(request: Request) -> ChangeFollower:
    return request.app.state.follower


async def get_serving(request: Request) -> Serving:
    """How the model served since the start was chosen: its proof, and a variant refused."""
    return request.app.state.serving


RecognizerDep = Annotated[Recognizer, Depends(get_recognizer)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RefresherDep = Annotated[ModelRefresher, Depends(get_refresher)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
SelfTestDep = Annotated[SelfTest, Depends(get_self_test)]
FollowerDep = Annotated[ChangeFollower, Depends(get_follower)]
ServingDep = Annotated[Serving, Depends(get_serving)]

SUBJECT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"

# how an identification decides (POST /identify and /identify/video alike)
TopK = Annotated[int, Query(ge=1, le=100, description="subjects to rank")]
Threshold = Annotated[
    float | None, Query(ge=-1.0, le=1.0, description="decide at this score instead")
]
Fpir = Annotated[
    float | None,
    Query(
        gt=0.0,
        lt=1.0,
        description="the share of strangers' searches that may be given a name (default: the "
        "model card's, 0.01; docs: identification)",
    ),
]


async def read_upload(upload: UploadFile, settings: Settings) -> bytes:
    """The uploaded bytes, refusing more than the configured limit without reading it all."""
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ClipTooLargeError(f"the upload exceeds {settings.max_upload_bytes} bytes")
    return data
