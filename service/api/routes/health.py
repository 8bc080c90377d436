"""GET /healthz, /readyz and /model."""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from service.api.deps import RecognizerDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(recognizer: RecognizerDep) -> dict:
    """Ready to answer: runs a real embedding through the model."""
    started = time.perf_counter()
    clip = np.zeros((1, 8, 64, 44), np.uint8)
    clip[:, :, 8:56, 16:28] = 255
    await run_in_threadpool(recognizer.engine.embed, clip)
    return {
        "status": "ready",
        "model_version": recognizer.model_version,
        "provider": recognizer.engine.provider,
        "embed_ms": round(1000 * (time.perf_counter() - started), 2),
        "gallery_samples": len(recognizer.index),
    }


@router.get("/model")
def model(recognizer: RecognizerDep) -> dict:
    """The model card, and where embeddings are computed."""
    engine = recognizer.engine
    return {
        "version": recognizer.model_version,
        "provider": engine.provider,
        "device": engine.device,
        "fallback_reason": engine.fallback_reason,
        "threads": engine.threads,
        "card": engine.card.model_dump(mode="json") if engine.card else None,
    }
