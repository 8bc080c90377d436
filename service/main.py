"""The app factory: ``create_app(settings)`` builds the FastAPI app; its lifespan opens the model,
the gallery store and the index once, and closes the store on shutdown.

Which model serves at start: the one last activated on this gallery (recorded in the store) if
its file is still there, else ``settings.model``, else the shipped default. It must prove itself
on this machine first (``models.proof``): an int8 variant that does not reproduce its fp32
reference gives way to its fp32 model, with a log line and ``/readyz`` and ``/model`` saying
why; a model that fails with nothing to fall back to stops the start. If ``settings.model``
names a model other than the one that came up, a refresh to it starts in the background.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from models.engine import EmbeddingEngine
from models.proof import Serving, open_proven
from service.api.errors import install_error_handlers
from service.api.gate import RequestGate
from service.api.observe import install_observation
from service.api.policy import SECURITY_SCHEMES
from service.api.routes import admin, gallery, health, recognition, video, web
from service.batching import EmbedBatcher
from service.gallery import open_store
from service.gallery.store import GalleryStore
from service.metrics import Metrics, Readings
from service.people.identify import VideoPeople
from service.recognition import Recognizer
from service.refresh import (
    REQUESTED_MODEL_KEY,
    AlreadyActiveError,
    InvalidModelError,
    ModelRefresher,
    RefreshStatus,
    load_model,
    load_version,
    publish_model,
    read_active_model,
)
from service.replication import ChangeFollower
from service.self_test import SelfTest
from service.settings import Settings
from service.threads import apply_thread_budget

log = logging.getLogger("gaitlab.service")


def _activate_requested(settings: Settings, refresher: ModelRefresher, store: GalleryStore) -> None:
    """``--model FILE`` activates FILE when it is a new request: restarting with the same
    command line keeps a model activated since through the API."""
    if settings.model is None:
        return
    active = refresher.recognizer.active
    if settings.model.resolve() == active.engine.path.resolve():
        store.set_state(REQUESTED_MODEL_KEY, active.version)
        return
    try:
        engine = load_model(settings.model, settings.engine_options)
        requested = engine.version
        if requested != store.get_state(REQUESTED_MODEL_KEY):
            refresher.start(settings.model, engine)  # loaded once, not again
    except AlreadyActiveError:
        pass
    except InvalidModelError as error:  # the current model keeps serving
        log.error("model refused", extra={"model": str(settings.model), "error": str(error)})
        refresher.status = RefreshStatus("failed", error=str(error))
        return
    store.set_state(REQUESTED_MODEL_KEY, requested)


def readings(
    recognizer: Recognizer, refresher: ModelRefresher, follower: ChangeFollower
) -> Readings:
    """What the metrics' gauges show at a scrape."""
    active, status = recognizer.active, refresher.status
    return Readings(
        gallery_samples=len(active.index),
        gallery_subjects=active.index.subjects,
        model_version=active.version,
        provider=active.engine.provider,
        refresh_running=status.state == "running",
        refresh_done=status.done,
        refresh_total=status.total,
        change_position=follower.position,
        replica_lag_s=follower.lag_now() or 0.0,
    )


def start_model(settings: Settings, store: GalleryStore) -> Serving:
    """The model this process starts serving, proven on this machine (``models.proof``): the
    one last activated on the gallery if its file is here (or in the store), else
    ``settings.model``, else the shipped default; an int8 variant that fails its proof gives way
    to its fp32 model. Replicas share one model: a replica that cannot load it, or whose CPU
    refuses it, does not start."""
    recorded = store.active_model_version()
    start = read_active_model(store, settings.models_dir)
    if start is None and recorded is not None and settings.database_url:
        # replicas share the active model: never replace it with one of this replica's own
        raise RuntimeError(
            f"model {recorded} is active on this gallery but neither in {settings.models_dir} "
            "nor in the database: copy it into the models folder, or activate another model"
        )
    serving = open_proven(
        start or settings.model or settings.default_model(), settings.engine_options
    )
    version = serving.engine.version
    if serving.refused and settings.database_url and recorded not in (None, version):
        raise RuntimeError(
            f"{serving.fallback_reason}; but replicas share one model ({recorded}): activate "
            "its fp32 model for the gallery, or run this replica on a CPU where it holds"
        )
    return serving


def document_api_keys(app: FastAPI) -> None:
    """The OpenAPI document names the key schemes the routes' policies point to."""
    built = app.openapi

    def openapi() -> dict:
        schema = built()  # FastAPI builds it once and keeps it
        schema.setdefault("components", {}).setdefault("securitySchemes", SECURITY_SCHEMES)
        return schema

    app.openapi = openapi


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        apply_thread_budget(settings.request_threads)
        store = open_store(settings.store_target, settings.store_options)
        position = store.change_position()  # before the index is built: nothing is missed
        models_dir = settings.models_dir
        serving = start_model(settings, store)
        engine, start = serving.engine, serving.engine.path
        batcher = EmbedBatcher(
            settings.batch_max,
            settings.batch_wait_ms / 1000,
            observe=metrics.observe_batch,
            workers=settings.model_workers,
        )
        recognizer = Recognizer.open(
            engine,
            store,
            limits=settings.limits,
            min_frames=settings.min_frames,
            timing=metrics.observe_step,
            batcher=batcher,
            index_policy=settings.index_policy,
            centroids_dir=settings.centroids_dir,
        )
        if not store.has_model(engine.version):  # so every replica can load it
            publish_model(store, start, engine.version)
        active = store.active_model_version()  # again: another replica may have activated one
        embedded_model_lost = not settings.database_url and active != engine.version
        if active is None or embedded_model_lost:
            recognizer.activate(engine, start)
        refresher = ModelRefresher(recognizer, settings.models_dir, settings.engine_options)
        app.state.settings, app.state.metrics, app.state.serving = settings, metrics, serving
        app.state.recognizer, app.state.refresher = recognizer, refresher
        app.state.video = VideoPeople(settings.video_limits, settings.video_slots)
        app.state.self_test = self_test = SelfTest(recognizer, settings.self_test_interval_s)
        self_test.start()

        # replicas of a shared database follow its change log; the embedded one has no others
        def load(version: str) -> EmbeddingEngine:
            return load_version(store, version, models_dir, settings.engine_options)

        follower = ChangeFollower(recognizer, position, load, settings.poll_s)
        app.state.follower = follower
        metrics.read_with(lambda: readings(recognizer, refresher, follower))
        if settings.database_url:
            recognizer.follow(follower.catch_up)
            follower.start()
        log.info(
            "serving",
            extra={
                "model_version": engine.version,
                "model": str(start),
                "provider": engine.provider,
                "proof": serving.proof.detail,
                "fallback": serving.fallback_reason,
                "gallery_samples": len(recognizer.index),
                "auth": "api keys" if settings.auth_enabled else "off (loopback only)",
            },
        )
        _activate_requested(settings, refresher, store)
        try:
            yield
        finally:
            follower.stop()
            self_test.stop()
            refresher.stop()
            recognizer.close()
            store.close()

    app = FastAPI(
        title="GaitLab", summary="Identify people by the way they walk.", lifespan=lifespan
    )
    install_error_handlers(app, count=metrics.error)
    document_api_keys(app)
    routers = [module.router for module in (recognition, video, gallery, admin, health)]
    for router in routers:
        app.include_router(router)
    app.include_router(web.router)
    app.mount("/static", web.static_files(), name="static")
    routes = [route for router in routers for route in router.routes]
    app.add_middleware(RequestGate, settings=settings, routes=routes, count=metrics.error)
    install_observation(app, metrics)  # outermost: sees every request, refused ones included
    return app
