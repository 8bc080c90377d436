"""Service settings: one validated object, from arguments or ``GAITLAB_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import onnxruntime
from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.default import default_model_path
from models.engine import CUDA, EngineOptions
from service.clip_limits import ClipLimits
from service.gallery.availability import StoreOptions
from service.gallery.policy import IndexPolicy
from service.people.limits import VideoLimits

MIN_KEY_LENGTH = 16
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class InsecureBindError(ValueError):
    """Listening on a non-loopback address with no API keys configured."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Path("gaitlab-data")
    # unset: the embedded SQLite gallery in data_dir; postgresql://…: a server replicas share
    database_url: str | None = Field(None, repr=False, pattern=r"^postgres(ql)?://")
    poll_s: float = Field(1.0, gt=0)  # replicas: change-log polling when no notification comes
    # --- outages (docs/service/outages.md): how long a request may wait on the store, and how
    # often a background check looks at it (readiness; the end of an outage)
    store_timeout_s: float = Field(2.0, gt=0, le=60)
    store_check_s: float = Field(0.5, gt=0, le=60)
    model: Path | None = None  # None: the shipped default model
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # int8 or fp32 variant of the shipped default; auto: int8 on a CPU when its card says it
    # keeps fp32's accuracy (README "The default model"). A --model file is used as it is.
    precision: Literal["auto", "fp32", "int8"] = "auto"
    # --- speed (README "Speed"): one thread budget, micro-batching, the search index
    threads: int | None = Field(None, gt=0)  # the model's intra-op threads; None: usable cores
    spin: bool = True  # model threads busy-wait within a call (ONNX Runtime's default): faster
    search_threads: int = Field(1, gt=0)  # FAISS's OpenMP threads for one query
    request_threads: int = Field(16, gt=0)  # decoding and search (the request threadpool)
    model_workers: int | None = Field(None, gt=0)  # model calls side by side; None: usable cores
    batch_max: int = Field(8, gt=0)  # clips of concurrent requests embedded in one call
    batch_wait_ms: float = Field(2.0, ge=0)  # wait for requests still decoding, at most
    index: Literal["auto", "exact", "approximate"] = "auto"
    approximate_from: int = Field(5_000, gt=0)  # auto: gallery size where IVF takes over
    nprobe: int = Field(16, gt=0)  # IVF lists read per query
    # --- limits (README "Limits"): what one request may cost, enforced as it arrives
    max_upload_bytes: int = Field(64 * 1024 * 1024, gt=0)  # one clip
    max_frames: int = Field(1000, gt=0)  # frames of one clip
    max_frame_pixels: int = Field(2048 * 2048, gt=0)  # pixels of one decoded frame
    max_clip_pixels: int = Field(128 * 1024 * 1024, gt=0)  # decoded pixels of one clip, in all
    min_frames: int = Field(5, gt=0)
    # colour videos of people (docs/video.md): processed frame by frame in a capped child
    max_video_seconds: float = Field(60.0, gt=0)  # the container's duration
    max_video_pixels: int = Field(1000 * 1280 * 720, gt=0)  # all decoded frames together
    video_slots: int = Field(2, gt=0)  # videos processed at once (each takes a core); more: 429
    max_bulk_clips: int = Field(256, gt=0)
    max_request_bytes: int = Field(512 * 1024 * 1024, gt=0)  # a whole request (bulk, models)
    max_concurrency: int = Field(8, gt=0)  # embedding requests in flight; more get a 429
    body_idle_timeout_s: float = Field(10.0, gt=0)  # longest pause while a body arrives
    body_min_rate: int = Field(16 * 1024, ge=0)  # bytes/s a body must average after the grace
    body_grace_s: float = Field(10.0, ge=0)
    body_timeout_s: float = Field(600.0, gt=0)  # a whole body, however fast it arrives
    # admin: gallery writes, model refresh, and all a client may do; client: identify, verify, reads
    admin_keys: tuple[str, ...] = Field((), repr=False)
    client_keys: tuple[str, ...] = Field((), repr=False)
    log_format: Literal["json", "text"] = "json"
    self_test_interval_s: float = Field(60.0, gt=0)  # a real embedding on a timer (readiness)

    @field_validator("admin_keys", "client_keys", mode="before")
    @classmethod
    def _split_keys(cls, value):
        if isinstance(value, str):  # from the environment: comma-separated
            value = [key.strip() for key in value.split(",") if key.strip()]
        for key in value:
            if len(key) < MIN_KEY_LENGTH:
                raise ValueError(f"API keys must be at least {MIN_KEY_LENGTH} characters")
        return tuple(value)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.admin_keys or self.client_keys)

    def check_bind(self, host: str) -> None:
        """Secure by default: without API keys, refuse to listen beyond this machine."""
        if not self.auth_enabled and host not in LOOPBACK:
            raise InsecureBindError(
                f"refusing to listen on {host} without API keys: set GAITLAB_ADMIN_KEYS and "
                "GAITLAB_CLIENT_KEYS (comma-separated), or listen on 127.0.0.1"
            )

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """``GAITLAB_DATA_DIR``, ``GAITLAB_MODEL``, ``GAITLAB_DEVICE``, … then ``overrides``."""
        values = {}
        for name in cls.model_fields:
            env = os.environ.get(f"GAITLAB_{name.upper()}")
            if env is not None:
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @property
    def limits(self) -> ClipLimits:
        return ClipLimits(
            max_bytes=self.max_upload_bytes,
            max_frames=self.max_frames,
            max_frame_pixels=self.max_frame_pixels,
            max_total_pixels=self.max_clip_pixels,
        )

    @property
    def video_limits(self) -> VideoLimits:
        return VideoLimits(
            max_frames=self.max_frames,
            max_frame_pixels=self.max_frame_pixels,
            max_pixels=self.max_video_pixels,
            max_seconds=self.max_video_seconds,
        )

    @property
    def engine_options(self) -> EngineOptions:
        """How every live model of this process runs."""
        return EngineOptions(self.device, self.threads, self.spin)

    def default_model(self) -> Path:
        """The shipped default in this precision (``FileNotFoundError`` if none is shipped)."""
        on_cpu = self.device == "cpu" or CUDA not in onnxruntime.get_available_providers()
        return default_model_path(self.precision, on_cpu)

    @property
    def store_options(self) -> StoreOptions:
        return StoreOptions(self.store_timeout_s, self.store_check_s)

    @property
    def index_policy(self) -> IndexPolicy:
        return IndexPolicy(self.index, self.approximate_from, self.nprobe, self.search_threads)

    @property
    def gallery_path(self) -> Path:
        return self.data_dir / "gallery.db"

    @property
    def store_target(self) -> str | Path:
        """Where the gallery is: the database URL, or the SQLite file in the data dir."""
        return self.database_url or self.gallery_path

    @property
    def models_dir(self) -> Path:
        """Models activated on this gallery are kept here."""
        return self.data_dir / "models"

    @property
    def centroids_dir(self) -> Path:
        """Trained centroids of approximate indexes, kept between starts."""
        return self.data_dir / "index"
