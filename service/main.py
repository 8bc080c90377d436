"""The app factory: ``create_app(settings)`` builds the FastAPI app; its lifespan opens the model,
the gallery store and the index once, and closes the store on shutdown."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from models.default import default_model_path
from models.engine import EmbeddingEngine
from service.api.errors import install_error_handlers
from service.api.routes import gallery, health, recognition
from service.gallery.store import GalleryStore
from service.recognition import Recognizer
from service.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = EmbeddingEngine(
            settings.model or default_model_path(), device=settings.device, threads=settings.threads
        )
        store = GalleryStore(settings.gallery_path)
        app.state.settings = settings
        app.state.recognizer = Recognizer(engine, store, settings.limits, settings.min_frames)
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title="GaitLab", summary="Identify people by the way they walk.", lifespan=lifespan
    )
    install_error_handlers(app)
    for module in (recognition, gallery, health):
        app.include_router(module.router)
    return app
