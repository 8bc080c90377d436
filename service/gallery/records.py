"""What the gallery stores, whatever the database: records, their checks, and the store's errors.

A sample keeps its normalised silhouettes (``uint8 [T, 64, 44]``, zlib-compressed raw bytes,
never pickled) so the gallery can be re-embedded by a later model; each embedding records the
model version that made it. Metadata, condition and view are checked before anything is stored,
so what is stored can always be read back and served.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

import numpy as np

from models.contract import FRAME_HEIGHT, MODEL_WIDTH
from service.errors import NotFoundError, ServiceError


class SubjectNotFoundError(NotFoundError):
    code = "subject_not_found"

    @classmethod
    def of(cls, subject_id: str) -> SubjectNotFoundError:
        return cls(f"no subject {subject_id!r} in the gallery")


class SampleNotFoundError(NotFoundError):
    code = "sample_not_found"


ACTIVE_MODEL_KEY = "active_model"  # service_state: {"version", "path"} of the active model


class StaleModelError(ServiceError):
    """An enrollment embedded by a model that is no longer the active one (another replica
    activated a new model meanwhile): the replica switches and embeds again."""

    status, code = 503, "model_changed"


class StoreUnavailableError(ServiceError):
    """The gallery store cannot be used now: the database is away or refuses, a file is locked,
    read-only or its disk full, or a wait for it ran out. The operation was not acknowledged
    (a write cut off during its commit may still have been stored); retry after
    ``Retry-After`` seconds. Raised by the store (``service.gallery.store``), which turns the
    driver's errors into this one."""

    status, code = 503, "store_unavailable"

    def __init__(self, detail: str, retry_after_s: int = 1):
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_s)}


class StoreVersionError(RuntimeError):
    """The store was written by a newer GaitLab than this one."""


class InvalidMetadataError(ServiceError):
    code = "bad_metadata"


MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 8
MAX_TEXT_CHARS = 64


def _depth(value: object) -> int:
    """How deeply dicts and lists nest in ``value`` (iteratively: any depth is measured)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children)
    return deepest


def encode_metadata(metadata: object) -> str:
    """A sample's metadata as the JSON text stored and served back, or ``InvalidMetadataError``:
    a JSON object, nested at most 8 deep, at most 4 KiB of UTF-8, finite numbers, no lone
    surrogates. Checked before anything is stored, so what is stored can always be read."""
    if not isinstance(metadata, dict):
        raise InvalidMetadataError("metadata must be a JSON object")
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise InvalidMetadataError(f"metadata is nested more than {MAX_METADATA_DEPTH} deep")
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError) as error:  # NaN/inf, non-JSON values, lone surrogates
        raise InvalidMetadataError(f"metadata cannot be stored as JSON: {error}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidMetadataError(f"metadata is {size} bytes; at most {MAX_METADATA_BYTES}")
    return text


def check_silhouettes(silhouettes: np.ndarray) -> None:
    shape = silhouettes.shape
    if len(shape) != 3 or shape[1:] != (FRAME_HEIGHT, MODEL_WIDTH):
        raise ValueError(f"silhouettes must be [T, 64, 44]; got {shape}")


def check_text(value: str | None, field: str) -> str | None:
    """A short label (condition, view) that stores and serves back as UTF-8."""
    if value is None:
        return None
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidMetadataError(f"{field} is longer than {MAX_TEXT_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMetadataError(f"{field} is not valid text (a lone surrogate)") from None
    return value


@dataclass(frozen=True)
class Sample:
    id: int
    subject_id: str
    created_at: float
    frames: int
    condition: str | None = None
    view: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NewSample:
    """A clip to enroll: silhouettes uint8 [T, 64, 44] and its embedding float32 [d]."""

    subject_id: str
    silhouettes: np.ndarray
    vector: np.ndarray
    condition: str | None = None
    view: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    id: str
    created_at: float
    metadata: dict
    samples: list[Sample]


@dataclass(frozen=True)
class EmbeddingSet:
    """Every embedding of one model version: sample ids int64 [n], subject ids, float32 [n, d]."""

    sample_ids: np.ndarray
    subject_ids: list[str]
    vectors: np.ndarray


@dataclass(frozen=True)
class Change:
    """One entry of the change log: what a committed write did, for replicas to follow.

    kind: "enroll" (samples and their embeddings by ``model_version``), "delete" (samples),
    "activate" (``model_version`` became the active model). ``at``: commit time, epoch seconds.
    """

    id: int
    kind: str
    sample_ids: list[int]
    model_version: str | None
    at: float


def pack_silhouettes(silhouettes: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(silhouettes, dtype=np.uint8).tobytes(), level=6)


def unpack_silhouettes(blob: bytes, frames: int) -> np.ndarray:
    flat = np.frombuffer(zlib.decompress(blob), dtype=np.uint8)
    return flat.reshape(frames, FRAME_HEIGHT, MODEL_WIDTH)
