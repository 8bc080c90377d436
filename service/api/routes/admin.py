"""/admin/model: activate a new model (upload or server-side path) and follow the refresh."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from service.api.deps import RecognizerDep, RefresherDep, SettingsDep
from service.api.errors import error_responses
from service.api.policy import declare
from service.recognition import Recognizer
from service.refresh import InvalidModelError, ModelRefresher

router = APIRouter(prefix="/admin", tags=["admin"], responses=error_responses(401, 403))
MAX_PATH = 4096  # PATH_MAX on Linux


def model_state(recognizer: Recognizer, refresher: ModelRefresher) -> dict:
    active = recognizer.active
    return {
        "active": {
            "version": active.version,
            "provider": active.engine.provider,
            "path": str(active.engine.path),
            "gallery_samples": len(active.index),
        },
        "refresh": refresher.status.public(),
    }


@router.get("/model", **declare("admin"))
def get_model(recognizer: RecognizerDep, refresher: RefresherDep) -> dict:
    """The active model and the state of the last refresh (progress while it runs)."""
    return model_state(recognizer, refresher)


@router.post(
    "/model",
    status_code=202,
    **declare("admin", body="large"),
    responses=error_responses(400, 408, 409, 413, 422, 503),
)
async def activate_model(
    recognizer: RecognizerDep,
    refresher: RefresherDep,
    settings: SettingsDep,
    model: Annotated[UploadFile | None, File(description="an exported ONNX model")] = None,
    path: Annotated[
        str | None, Form(max_length=MAX_PATH, description="or a model file on the server")
    ] = None,
) -> dict:
    """Check the model, then re-embed the gallery with it in the background and swap when done.
    Requests keep being answered by the current model until the swap. 422 for a model that
    cannot serve (the current one stays), 409 while another refresh runs."""
    if (model is None) == (path is None):
        raise InvalidModelError(
            "send either a model file (field model) or a server-side path (field path)"
        )
    if path is not None:
        await run_in_threadpool(refresher.start, Path(path))
        return model_state(recognizer, refresher)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=settings.models_dir, suffix=".upload.onnx") as spool:
        size = 0
        while chunk := await model.read(1 << 20):
            size += len(chunk)
            if size > settings.max_request_bytes:
                raise InvalidModelError(f"the model exceeds {settings.max_request_bytes} bytes")
            spool.write(chunk)
        spool.flush()
        await run_in_threadpool(refresher.start, Path(spool.name))
    return model_state(recognizer, refresher)
