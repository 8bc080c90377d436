"""Recognition, the service's core (no HTTP here): enroll, identify, verify, forget.

It ties the pieces together: uploads are decoded (``service.clips``), normalised with the same
function training used (``models.silhouette``), embedded (``models.engine``), stored durably
(``service.gallery.store``) and searched (``service.gallery.index``). Errors are domain errors;
the API layer maps them to HTTP once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from models.batching import equal_length_batches
from models.engine import EmbeddingEngine
from models.scoring import part_normalise
from models.silhouette import normalise_clip
from service.clips import ClipError, ClipLimits, decode_clip
from service.gallery.index import GalleryIndex, SubjectHit
from service.gallery.store import GalleryStore, NewSample, Sample, SubjectNotFoundError

DECISION_FAR = 0.01
"""The model card's threshold used for accept/reject decisions unless one is given."""


class TooFewFramesError(ClipError):
    reason = "too_few_frames"


class NoThresholdError(ValueError):
    """The model has no calibrated threshold and the request gave none."""


@dataclass(frozen=True)
class Probe:
    """A normalised, embedded upload."""

    vector: np.ndarray  # float32 [c * p], part-normalised
    silhouettes: np.ndarray  # uint8 [T, 64, 44]

    @property
    def frames(self) -> int:
        return len(self.silhouettes)


@dataclass(frozen=True)
class Enrollment:
    """A clip to enroll, as uploaded."""

    subject_id: str
    upload: bytes
    condition: str | None = None
    view: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Identification:
    hits: list[SubjectHit]
    decision: str | None
    threshold: float
    frames: int
    model_version: str


@dataclass(frozen=True)
class Verification:
    subject_id: str
    score: float
    accepted: bool
    threshold: float
    frames: int
    model_version: str


class Recognizer:
    """One model, one gallery. Safe to call from several threads."""

    def __init__(
        self,
        engine: EmbeddingEngine,
        store: GalleryStore,
        limits: ClipLimits | None = None,
        min_frames: int = 5,
    ):
        self.engine = engine
        self.store = store
        self.limits = limits or ClipLimits()
        self.min_frames = min_frames
        self._write_lock = threading.Lock()
        self.index = self._build_index()

    @property
    def model_version(self) -> str:
        return self.engine.version

    def _build_index(self) -> GalleryIndex:
        """Load this model's embeddings from the store; embed samples it has none for."""
        for sample_id in self.store.samples_missing(self.model_version):
            vector = part_normalise(self.engine.embed(self.store.silhouettes(sample_id)[None]))[0]
            self.store.put_embedding(sample_id, self.model_version, vector)
        found = self.store.embeddings(self.model_version)
        dim = found.vectors.shape[1] if len(found.sample_ids) else self._dim()
        index = GalleryIndex(dim, self.model_version)
        if len(found.sample_ids):
            index.add(found.sample_ids, found.subject_ids, found.vectors)
        return index

    def _dim(self) -> int:
        probe = self.engine.embed(np.zeros((1, 1, 64, 44), np.uint8))
        return int(np.prod(probe.shape[1:]))

    def threshold(self, override: float | None = None) -> float:
        if override is not None:
            return override
        card = self.engine.card
        calibrated = card.threshold_at(DECISION_FAR) if card else None
        if calibrated is None:
            raise NoThresholdError("the model has no calibrated threshold: pass one")
        return calibrated.score

    def _silhouettes(self, upload: bytes) -> np.ndarray:
        """Decode and normalise an upload: uint8 [T, 64, 44], at least ``min_frames`` long."""
        silhouettes = normalise_clip(decode_clip(upload, self.limits))
        if len(silhouettes) < self.min_frames:
            raise TooFewFramesError(
                f"{len(silhouettes)} usable frames (frames with a silhouette); "
                f"at least {self.min_frames} are needed"
            )
        return silhouettes

    def probe(self, upload: bytes) -> Probe:
        """Decode, normalise and embed an upload."""
        silhouettes = self._silhouettes(upload)
        vector = part_normalise(self.engine.embed(silhouettes[None]))[0]
        return Probe(vector, silhouettes)

    def identify(self, upload: bytes, top_k: int = 5, threshold: float | None = None):
        probe = self.probe(upload)
        limit = self.threshold(threshold)
        hits = self.index.search(probe.vector, top_k)
        decision = hits[0].subject_id if hits and hits[0].score >= limit else None
        return Identification(hits, decision, limit, probe.frames, self.model_version)

    def verify(self, upload: bytes, subject_id: str, threshold: float | None = None):
        probe = self.probe(upload)
        limit = self.threshold(threshold)
        hit = self.index.score_subject(probe.vector, subject_id)
        if hit is None:
            raise SubjectNotFoundError(subject_id)
        return Verification(
            subject_id, hit.score, hit.score >= limit, limit, probe.frames, self.model_version
        )

    def enroll(
        self,
        subject_id: str,
        upload: bytes,
        condition: str | None = None,
        view: str | None = None,
        metadata: dict | None = None,
    ) -> Sample:
        """Store the clip and its embedding (durable on return), then make it searchable."""
        return self.enroll_many([Enrollment(subject_id, upload, condition, view, metadata or {})])[
            0
        ]

    def enroll_many(self, items: list[Enrollment], batch_size: int = 16) -> list[Sample]:
        """Enroll several clips at once: all or none. Every clip is decoded and checked before
        anything is stored (an error names the clip), embedded in equal-length batches, and
        stored in one transaction; durable on return."""
        clips = []
        for position, item in enumerate(items):
            try:
                clips.append(self._silhouettes(item.upload))
            except ClipError as error:
                if len(items) == 1:
                    raise
                raise type(error)(f"clip {position}: {error}") from error
        vectors = np.empty((len(clips), 0), np.float32)
        for batch in equal_length_batches(np.array([len(c) for c in clips]), batch_size):
            embedded = part_normalise(self.engine.embed(np.stack([clips[i] for i in batch])))
            if vectors.shape[1] == 0:
                vectors = np.empty((len(clips), embedded.shape[1]), np.float32)
            vectors[batch] = embedded
        new = [
            NewSample(i.subject_id, c, v, i.condition, i.view, i.metadata)
            for i, c, v in zip(items, clips, vectors, strict=True)
        ]
        with self._write_lock:
            samples = self.store.add_samples(new, self.model_version)
            self.index.add(
                np.array([s.id for s in samples]), [s.subject_id for s in samples], vectors
            )
        return samples

    def delete_subject(self, subject_id: str) -> int:
        with self._write_lock:
            removed = self.store.delete_subject(subject_id)
            self.index.remove(removed)
        return len(removed)

    def delete_sample(self, subject_id: str, sample_id: int) -> None:
        with self._write_lock:
            self.store.delete_sample(subject_id, sample_id)
            self.index.remove([sample_id])
