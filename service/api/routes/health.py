"""GET /healthz, /readyz (open, for probes), /model and /metrics (client key)."""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from service.api.auth import CLIENT
from service.api.deps import MetricsDep, RecognizerDep, RefresherDep
from service.metrics import CONTENT_TYPE

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
    active = recognizer.active
    await run_in_threadpool(active.engine.embed, clip)
    return {
        "status": "ready",
        "model_version": active.version,
        "provider": active.engine.provider,
        "embed_ms": round(1000 * (time.perf_counter() - started), 2),
        "gallery_samples": len(active.index),
    }


@router.get("/model", dependencies=[CLIENT])
def model(recognizer: RecognizerDep, refresher: RefresherDep) -> dict:
    """The model card, where embeddings are computed, and the state of a model refresh."""
    engine = recognizer.engine
    return {
        "version": engine.version,
        "provider": engine.provider,
        "device": engine.device,
        "fallback_reason": engine.fallback_reason,
        "threads": engine.threads,
        "index_device": recognizer.index.device,
        "card": engine.card.model_dump(mode="json") if engine.card else None,
        "refresh": refresher.status.public(),
    }


@router.get("/metrics", dependencies=[CLIENT])
def metrics(recognizer: RecognizerDep, refresher: RefresherDep, metrics: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency per route, embed and search time, gallery size,
    the model, refresh progress, errors by kind."""
    return Response(metrics.render(recognizer, refresher), media_type=CONTENT_TYPE)
