"""Probes (open to all, and telling nothing an outsider should learn), /model and /metrics.

- ``/livez`` (and its old name ``/healthz``): the process is up;
- ``/readyz``: ready to serve — a model is loaded and the store answers — read from state kept
  current in the background, so it answers at once and never waits on the store or a thread:
  the store's background check (``service.gallery.availability``) and the last periodic
  self-test embedding (ok or not), neither run per call;
- ``/model`` and ``/metrics`` (client key): version, provider, gallery size, the card, timings.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service.api.deps import (
    FollowerDep,
    MetricsDep,
    RecognizerDep,
    RefresherDep,
    SelfTestDep,
    ServingDep,
)
from service.api.errors import error_responses
from service.api.policy import declare
from service.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get("/livez")
@router.get("/healthz", include_in_schema=False)
def livez() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready: the store or model failed"}})
async def readyz(
    recognizer: RecognizerDep, self_test: SelfTestDep, follower: FollowerDep, serving: ServingDep
) -> JSONResponse:
    """Ready to serve: a model is loaded, the store answered its last background check (at
    most ``GAITLAB_STORE_CHECK_S`` ago), the last self-test passed (the model reproduced its
    card's reference embeddings through the live path); for replicas of a shared database,
    the lag of the last change applied (seconds); and, when the model first chosen was refused
    on this machine, which one serves instead and why (``fallback``). ``async`` and free of
    I/O: it runs on the event loop, never in the threads that serve identify."""
    checks = {
        "model": recognizer.active is not None,
        "store": recognizer.store.status.up,
        "self_test": self_test.ok,
    }
    if not follower.healthy:  # a replica that cannot follow its gallery's changes
        checks["replication"] = False
    ready = all(checks.values())
    answer: dict = {"status": "ready" if ready else "not ready", "checks": checks}
    if (lag := follower.lag_now()) is not None:
        answer["replica_lag_s"] = round(lag, 3)
    if serving.fallback_reason:
        answer["fallback"] = serving.fallback_reason
    return JSONResponse(answer, status_code=200 if ready else 503)


@router.get("/model", **declare("client"), responses=error_responses(401))
def model(
    recognizer: RecognizerDep, refresher: RefresherDep, self_test: SelfTestDep, serving: ServingDep
) -> dict:
    """The model card, where embeddings are computed, the gallery size, the last self-test, the
    start-up proof (``start``: the proof of the model chosen at start, a variant refused on this
    machine and why) and the state of a model refresh."""
    active = recognizer.active
    engine = active.engine
    return {
        "version": engine.version,
        "provider": engine.provider,
        "device": engine.device,
        "fallback_reason": engine.fallback_reason,
        "threads": engine.threads,
        "index_device": active.index.device,
        "index": active.index.kind,
        "index_lists": active.index.lists,
        "gallery_samples": len(active.index),
        "self_test": self_test.public(),
        "start": serving.public(),
        "card": engine.card.public() if engine.card else None,
        "refresh": refresher.status.public(),
    }


@router.get("/metrics", **declare("client"), responses=error_responses(401))
def metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency per route, embed and search time, gallery size,
    the model, refresh progress, errors by kind, the change-log position and replica lag."""
    return Response(metrics.render(), media_type=CONTENT_TYPE)
