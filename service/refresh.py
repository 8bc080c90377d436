"""Model refresh without downtime: activate a newly exported model while the service answers.

``ModelRefresher.start(path)`` checks the model (loadable, the input contract, a model card with
a version), copies it into the service's data folder, and re-embeds every stored sample with it
in a background thread, writing the new embeddings beside the old ones. Meanwhile requests keep
using the old model and index. Then ``Recognizer.activate`` embeds what was enrolled in the
meantime and swaps model and index in one step; the old embeddings are dropped. A model that
fails any check is refused and the old one keeps serving; a refresh that fails halfway drops
its partial embeddings. The active model is recorded in the store, so a restart comes back on it.

Live requests come first: the re-embedding runs on its own single-threaded copy of the model,
in a thread at the lowest CPU priority, in small batches, so the scheduler gives live requests
the cores whenever they want them (README "Speed" has p99 with and without a refresh).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from models.card import card_path
from models.engine import EmbeddingEngine, EngineOptions, ModelContractError
from models.proof import prove
from service.errors import ServiceError
from service.gallery.embedded import embed_stored
from service.gallery.records import ACTIVE_MODEL_KEY
from service.gallery.store import GalleryStore
from service.recognition import Recognizer
from service.threads import lower_this_thread

log = logging.getLogger("gaitlab.refresh")

REQUESTED_MODEL_KEY = "requested_model"  # the version last named by ``gaitlab serve --model``


class ModelRefreshError(ServiceError, ValueError):
    """A refresh that cannot start."""

    code = "invalid_model"


class InvalidModelError(ModelRefreshError):
    code = "invalid_model"


class RefreshInProgressError(ModelRefreshError):
    status, code = 409, "refresh_in_progress"


class AlreadyActiveError(ModelRefreshError):
    status, code = 409, "already_active"


class RefreshCancelledError(RuntimeError):
    pass


@dataclass
class RefreshStatus:
    state: Literal["idle", "running", "done", "failed"] = "idle"
    target_version: str | None = None
    done: int = 0
    total: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None

    def public(self) -> dict:
        return asdict(self)


def load_model(path: Path, options: EngineOptions | None = None) -> EmbeddingEngine:
    """A model fit to serve (loadable, the input contract, a card, and it reproduces its card's
    reference embeddings here: ``models.proof``), or ``InvalidModelError`` saying why not."""
    try:
        engine = (options or EngineOptions()).open(path)
    except ModelContractError as error:
        raise InvalidModelError(str(error)) from error
    except OSError as error:  # missing, unreadable, a name too long for the file system
        raise InvalidModelError(f"cannot read the model file: {error.strerror or error}") from error
    if engine.card is None:
        raise InvalidModelError(
            f"{path.name}: no model card (gaitlab export writes one): the service needs its "
            "version to keep embeddings of different models apart"
        )
    proof = prove(engine)
    if proof.passed is False:
        raise InvalidModelError(f"{proof.detail}: its answers here would be wrong")
    return engine


def kept_name(version: str) -> str:
    """The file name a model version is kept under in a data folder."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", version) + ".onnx"


def read_active_model(store: GalleryStore, models_dir: Path) -> Path | None:
    """The file of the model last activated on this gallery: this replica's copy, else the
    activating replica's file if it is here, else a copy written from the store."""
    version = store.active_model_version()
    if version is None:
        return None
    return model_file(store, version, models_dir)


def model_file(store: GalleryStore, version: str, models_dir: Path) -> Path | None:
    """A local file of model ``version``: kept here already, else fetched from the store, else
    the file the activating process recorded (if it is on this machine). Callers check that
    what they load is ``version``."""
    local = Path(models_dir) / kept_name(version)
    if local.is_file():
        return local
    data = store.get_model(version)
    if data is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(local.name + ".partial")
        partial.write_bytes(data)
        partial.replace(local)
        return local
    recorded = Path(json.loads(store.get_state(ACTIVE_MODEL_KEY) or "{}").get("path", "-"))
    if store.active_model_version() == version and recorded.is_file():
        return recorded
    return None


def load_version(
    store: GalleryStore, version: str, models_dir: Path, options: EngineOptions
) -> EmbeddingEngine:
    """The engine of model ``version`` (from this machine or the store), checked to be it."""
    path = model_file(store, version, models_dir)
    if path is None:
        raise InvalidModelError(f"model {version} is active but neither here nor in the store")
    engine = load_model(path, options)
    if engine.version != version:
        raise InvalidModelError(f"{path} holds model {engine.version}, not {version}")
    return engine


def publish_model(store: GalleryStore, path: Path, version: str) -> None:
    """Keep the model file in the store, for replicas that do not have it."""
    store.put_model(version, Path(path).read_bytes())


class ModelRefresher:
    """Runs at most one refresh at a time for one ``Recognizer``."""

    def __init__(
        self,
        recognizer: Recognizer,
        models_dir: Path,
        options: EngineOptions | None = None,
        batch_size: int = 8,
    ):
        self.recognizer = recognizer
        self.models_dir = Path(models_dir)
        self.options, self.batch_size = options or EngineOptions(), batch_size
        self.status = RefreshStatus()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancelled = threading.Event()

    @property
    def running(self) -> bool:
        return self.status.state == "running"

    def start(self, source: Path, engine: EmbeddingEngine | None = None) -> RefreshStatus:
        """Check ``source`` and start re-embedding the gallery with it in the background;
        ``engine``: ``source`` already loaded with ``load_model``, if the caller has it."""
        with self._lock:
            if self.running:
                raise RefreshInProgressError(
                    f"a refresh to {self.status.target_version} is running "
                    f"({self.status.done}/{self.status.total})"
                )
            engine = engine or load_model(Path(source), self.options)
            if engine.version == self.recognizer.model_version:
                raise AlreadyActiveError(f"model {engine.version} is already active")
            store = self.recognizer.store
            if not store.try_refresh_lock():
                raise RefreshInProgressError("a model refresh is running on another replica")
            try:
                kept = self._keep(Path(source), engine.version)
                publish_model(store, kept, engine.version)
                # the live model from the kept file, loaded here (at normal priority, for its
                # threads): an upload's spool file is gone once the request ends, and the
                # embedding workers make their single-threaded copies from the model's file
                engine = self._reload(kept, engine)
            except BaseException:
                store.release_refresh_lock()
                raise
            self._cancelled.clear()
            total = len(self.recognizer.store.samples_missing(engine.version))
            self.status = RefreshStatus("running", engine.version, 0, total, started_at=time.time())
            self._thread = threading.Thread(
                target=self._run, args=(engine, kept), name="model-refresh", daemon=True
            )
            self._thread.start()
            log.info("refresh started", extra={"version": engine.version, "samples": total})
            return self.status

    def wait(self, timeout: float | None = None) -> RefreshStatus:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status

    def stop(self) -> None:
        """Cancel a running refresh (at shutdown); the current model stays active."""
        self._cancelled.set()
        self.wait()

    def _keep(self, source: Path, version: str) -> Path:
        """Copy the model (and its card file, if any) into the data folder."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        kept = self.models_dir / kept_name(version)
        if source.resolve() != kept.resolve():
            shutil.copyfile(source, kept)
            if card_path(source).is_file():
                shutil.copyfile(card_path(source), card_path(kept))
        return kept

    def _reload(self, kept: Path, engine: EmbeddingEngine) -> EmbeddingEngine:
        if engine.path.resolve() == kept.resolve():
            return engine
        reloaded = load_model(kept, self.options)
        if reloaded.version != engine.version:
            raise InvalidModelError(f"{kept} holds {reloaded.version}, not {engine.version}")
        return reloaded

    def _progress(self, done: int) -> None:
        if self._cancelled.is_set():
            raise RefreshCancelledError("cancelled: the service is shutting down")
        self.status.done += done

    def _clean_up_after(self, engine: EmbeddingEngine, previous) -> None:
        """After a failed refresh: drop the new model's embeddings unless its activation was
        committed (then the store serves it: swap to it here too, or leave that to the
        follower)."""
        recognizer = self.recognizer
        try:
            if recognizer.store.active_model_version() == engine.version:
                recognizer.switch(engine)
            elif recognizer.active is previous:
                recognizer.store.drop_embeddings_of(engine.version)
        except Exception:  # the store is unreachable: nothing more to do now
            log.exception("cleaning up after the refresh failed", extra={"version": engine.version})

    def _run(self, engine: EmbeddingEngine, kept: Path) -> None:
        recognizer, previous = self.recognizer, self.recognizer.active
        lower_this_thread()  # before the background model exists: its threads inherit it
        try:
            # one thread, this one: the live model keeps its own threads and priority
            background = load_model(kept, EngineOptions(self.options.device, 1, spin=False))
            missing = recognizer.store.samples_missing(engine.version)
            embed_stored(background, recognizer.store, missing, self.batch_size, self._progress)
            del background
            # the activation is one transaction (catch-up embeddings, the record, the change):
            # a crash before it keeps the old model, after it comes back on the new one
            recognizer.activate(engine, kept)
        except Exception as error:  # the old model keeps serving whatever went wrong
            log.exception("refresh failed", extra={"version": engine.version})
            self._clean_up_after(engine, previous)
            self.status.error = f"{type(error).__name__}: {error}"
            self.status.state = "failed"
        else:
            self.status.state = "done"
            log.info("refresh done", extra={"version": engine.version})
        finally:
            self.status.finished_at = time.time()
            recognizer.store.release_refresh_lock()
