"""Recognition, the service's core (no HTTP here): enroll, identify, verify, forget.

It ties the pieces together: uploads are decoded (``service.clips``), normalised with the same
function training used (``models.silhouette``), embedded (``models.engine``), stored durably
(``service.gallery.store``) and searched (``service.gallery.index``). Errors are domain errors;
the API layer maps them to HTTP once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from models.engine import EmbeddingEngine
from models.identification import StrangerModel
from models.scoring import accepts, part_normalise
from models.silhouette import normalise_clip
from service.batching import EmbedBatcher, Ticket
from service.clip_limits import ClipError, ClipLimits
from service.clips import decode_clip
from service.decisions import (
    DecisionRule,
    NamedHit,
    false_accept_chance,
    identification_rule,
    named_hits,
    pair_rule,
)
from service.gallery.composition import GalleryComposition
from service.gallery.embedded import build_index, embed_stored
from service.gallery.index import GalleryIndex, IndexPolicy, SubjectHit
from service.gallery.store import (
    GalleryStore,
    InvalidMetadataError,
    NewSample,
    Sample,
    SampleNotFoundError,
    StaleModelError,
    StoreUnavailableError,
    SubjectNotFoundError,
    check_text,
    encode_metadata,
)
from service.pictures import Kind, PictureCache


class TooFewFramesError(ClipError):
    code = "too_few_frames"


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
    hits: list[NamedHit]
    decision: str | None
    rule: DecisionRule
    frames: int
    model_version: str
    silhouettes: np.ndarray = field(repr=False, compare=False)  # the probe as the model saw it

    @property
    def threshold(self) -> float:
        return self.rule.threshold

    @property
    def margin(self) -> float | None:
        """The top subject's score minus the next subject's (None with fewer than two)."""
        return self.hits[0].score - self.hits[1].score if len(self.hits) > 1 else None


@dataclass(frozen=True)
class Verification:
    subject_id: str
    score: float
    accepted: bool
    rule: DecisionRule
    false_accept_chance: float | None  # the per-pair FAR at this score (None: no curve)
    frames: int
    model_version: str
    silhouettes: np.ndarray = field(repr=False, compare=False)  # the probe as the model saw it

    @property
    def threshold(self) -> float:
        return self.rule.threshold


@dataclass(frozen=True)
class ActiveModel:
    """A model and the index of the gallery embedded by it: always swapped together."""

    engine: EmbeddingEngine
    index: GalleryIndex

    @property
    def version(self) -> str:
        return self.engine.version

    @cached_property
    def stranger_model(self) -> StrangerModel | None:
        """The card's stranger-rate curves, ready to decide with (None: the card has none)."""
        card = self.engine.card
        return card.identification.model() if card and card.identification else None


Timing = Callable[[str, float], None]
"""Called with ("embed" | "search", seconds) after each step, e.g. to feed metrics."""


def probe_silhouettes(upload: bytes, limits: ClipLimits, min_frames: int) -> np.ndarray:
    """Decode and normalise an upload: uint8 [T, 64, 44], at least ``min_frames`` long."""
    silhouettes = normalise_clip(decode_clip(upload, limits))
    if len(silhouettes) < min_frames:
        raise TooFewFramesError(
            f"{len(silhouettes)} usable frames (frames with a silhouette); "
            f"at least {min_frames} are needed"
        )
    return silhouettes


def checked_clips(items: list[Enrollment], limits: ClipLimits, min_frames: int) -> list[np.ndarray]:
    """Every enrollment checked (its labels, metadata and clip) before anything is stored:
    their silhouettes, uint8 [T_i, 64, 44]; an error names the clip when there are several."""
    clips = []
    for position, item in enumerate(items):
        try:
            check_text(item.condition, "condition")
            check_text(item.view, "view")
            encode_metadata(item.metadata)
            clips.append(probe_silhouettes(item.upload, limits, min_frames))
        except (ClipError, InvalidMetadataError) as error:
            if len(items) == 1:
                raise
            raise type(error)(f"clip {position}: {error}") from error
    return clips


class Recognizer:
    """One gallery, searched with one active model at a time. Safe to call from several threads.

    Every request reads ``self.active`` once and uses that model and index throughout, so a
    model swap (``activate``) never mixes two models in one answer.
    """

    def __init__(
        self,
        active: ActiveModel,
        store: GalleryStore,
        composition: GalleryComposition,
        limits: ClipLimits | None = None,
        min_frames: int = 5,
        timing: Timing | None = None,
        batcher: EmbedBatcher | None = None,
        index_policy: IndexPolicy | None = None,
        centroids_dir: Path | None = None,
    ):
        """From a model and its index of the store's gallery, and the gallery's composition
        (:meth:`open` makes them)."""
        self.active = active
        self.store = store
        self.composition = composition
        """Each subject's views, for identification decisions at a promised FPIR."""
        self.index_policy, self.centroids_dir = index_policy, centroids_dir
        self.batcher = batcher or EmbedBatcher()
        """Makes every live embedding call, batching concurrent requests' clips."""
        self.limits = limits or ClipLimits()
        self.min_frames = min_frames
        self.timing = timing or (lambda step, seconds: None)
        self.write_lock = threading.Lock()
        """Held by every gallery write, and by a model swap; a request waits for it at most the
        store's timeout (``_writing``)."""
        self.pictures = PictureCache()
        self._catch_up: Callable[[], object] = lambda: None

    @classmethod
    def open(
        cls,
        engine: EmbeddingEngine,
        store: GalleryStore,
        index_policy: IndexPolicy | None = None,
        centroids_dir: Path | None = None,
        **options,
    ) -> Recognizer:
        """The store's gallery searched with ``engine``: stored samples it has not embedded yet
        are embedded first, then the index is built. ``options``: the constructor's."""
        embed_stored(engine, store, store.samples_missing(engine.version))
        index = build_index(engine, store, index_policy, centroids_dir)
        composition = GalleryComposition(store.sample_views())
        return cls(
            ActiveModel(engine, index),
            store,
            composition,
            index_policy=index_policy,
            centroids_dir=centroids_dir,
            **options,
        )

    def follow(self, catch_up: Callable[[], object]) -> None:
        """What an enrollment calls when it finds that another replica activated a model:
        catch up with the store (a replica's change follower), then embed again."""
        self._catch_up = catch_up

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The write lock for a request's write, waited for at most the store's timeout: a
        write that waits on the store (or a model swap) must not queue every other write
        behind it for longer than each would wait on the store itself."""
        timeout = self.store.options.timeout_s
        if not self.write_lock.acquire(timeout=timeout):
            wait = self.store.options.retry_after_s
            raise StoreUnavailableError(
                f"the gallery has been busy for over {timeout:g} s (another write is waiting "
                f"on the store, or a model is being swapped); retry after {wait} s",
                wait,
            )
        try:
            yield
        finally:
            self.write_lock.release()

    def _build_index(self, engine: EmbeddingEngine) -> GalleryIndex:
        return build_index(engine, self.store, self.index_policy, self.centroids_dir)  # I/O

    @property
    def engine(self) -> EmbeddingEngine:
        return self.active.engine

    @property
    def index(self) -> GalleryIndex:
        return self.active.index

    @property
    def model_version(self) -> str:
        return self.active.version

    def activate(self, engine: EmbeddingEngine, path: Path | str) -> None:
        """Make ``engine`` (its file at ``path``) the gallery's active model and swap to it.

        Its embeddings of every stored sample are in the store except for samples enrolled
        since; the store embeds those and records the activation in one transaction (which
        other replicas follow), then model and index are swapped together and the old model's
        embeddings forgotten."""
        # stragglers first, outside any lock: the activation then embeds only the very last
        embed_stored(engine, self.store, self.store.samples_missing(engine.version))
        with self.write_lock:
            self.store.activate_model(
                engine.version,
                str(Path(path).resolve()),
                lambda clips: part_normalise(engine.embed_many(clips)),
            )
            self.active = ActiveModel(engine, self._build_index(engine))
            self.store.drop_embeddings_except(engine.version)

    def switch(self, engine: EmbeddingEngine, rebuild: bool = False) -> None:
        """Follow an activation made elsewhere (another replica): swap to ``engine`` and the
        index of its embeddings, complete in the store since the activation committed.
        ``rebuild``: build the index afresh from the store even for the same model (a follower
        that missed changes)."""
        with self.write_lock:
            if rebuild or engine.version != self.active.version:
                self.active = ActiveModel(engine, self._build_index(engine))

    def _embed(
        self, engine: EmbeddingEngine, clips: list[np.ndarray], ticket: Ticket
    ) -> np.ndarray:
        """Part-normalised embeddings float32 [n, c * p] of clips uint8 [T_i, 64, 44], embedded
        by the batcher (with other requests' clips of the same length)."""
        started = time.perf_counter()
        vectors = part_normalise(ticket.embed(engine, clips))
        self.timing("embed", time.perf_counter() - started)
        return vectors

    def probe(self, upload: bytes, active: ActiveModel | None = None) -> Probe:
        """Decode, normalise and embed an upload."""
        with self.batcher.incoming() as ticket:
            silhouettes = probe_silhouettes(upload, self.limits, self.min_frames)
            vector = self._embed((active or self.active).engine, [silhouettes], ticket)[0]
        return Probe(vector, silhouettes)

    def close(self) -> None:
        """Stop the embedding worker (requests still queued get their answers first)."""
        self.batcher.close()

    def _search(
        self, index: GalleryIndex, probe: Probe, top_k: int, exact: bool
    ) -> list[SubjectHit]:
        started = time.perf_counter()
        hits = index.search(probe.vector, top_k, exact)
        self.timing("search", time.perf_counter() - started)
        return hits

    def identify(
        self,
        upload: bytes,
        top_k: int = 5,
        threshold: float | None = None,
        exact: bool = False,
        fpir: float | None = None,
    ) -> Identification:
        """exact: search every sample even when the gallery's index is approximate; threshold
        (a score) or fpir (a promised share of strangers named): how to decide
        (:meth:`identification_rule`)."""
        active = self.active
        card, strangers = active.engine.card, active.stranger_model
        rule = identification_rule(card, strangers, self.composition, threshold, fpir)
        probe = self.probe(upload, active)  # after the rule: a request it refuses costs nothing
        found = self._search(active.index, probe, top_k, exact)
        hits = named_hits(found, strangers, self.composition)
        decision = hits[0].subject_id if hits and accepts(hits[0].score, rule.threshold) else None
        return Identification(hits, decision, rule, probe.frames, active.version, probe.silhouettes)

    def verify(
        self, upload: bytes, subject_id: str, threshold: float | None = None
    ) -> Verification:
        """Is this ``subject_id``? Its best sample's score against the per-pair threshold."""
        active = self.active
        rule = pair_rule(active.engine.card, threshold)
        probe = self.probe(upload, active)
        hit = active.index.score_subject(probe.vector, subject_id)
        if hit is None:
            raise SubjectNotFoundError.of(subject_id)
        chance = false_accept_chance(active.engine.card, hit.score)
        return Verification(
            subject_id,
            hit.score,
            accepts(hit.score, rule.threshold),
            rule,
            chance,
            probe.frames,
            active.version,
            probe.silhouettes,
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

    def enroll_many(self, items: list[Enrollment]) -> list[Sample]:
        """Enroll several clips at once: all or none. Every clip is decoded and checked before
        anything is stored (an error names the clip), embedded in equal-length batches, and
        stored in one transaction; durable on return. Refused at once, before any work, while
        the store is known to be down."""
        self.store.refuse_if_down()
        with self.batcher.incoming() as ticket:
            return self._enroll_many(items, ticket)

    def _enroll_many(self, items: list[Enrollment], ticket: Ticket) -> list[Sample]:
        clips = checked_clips(items, self.limits, self.min_frames)
        for _ in range(3):
            active = self.active
            vectors = self._embed(active.engine, clips, ticket)
            with self._writing():
                if self.active is not active:  # the model was swapped while we embedded
                    continue
                new = [
                    NewSample(i.subject_id, c, v, i.condition, i.view, i.metadata)
                    for i, c, v in zip(items, clips, vectors, strict=True)
                ]
                try:
                    samples = self.store.add_samples(new, active.version, require_active=True)
                except StaleModelError:
                    samples = None
                else:
                    ids = np.array([s.id for s in samples])
                    active.index.add(ids, [s.subject_id for s in samples], vectors)
                    self.composition.add((s.id, s.subject_id, s.view) for s in samples)
                    return samples
            self._catch_up()  # another replica activated a model: switch, then embed again
        raise StaleModelError("the active model kept changing during the enrollment; retry")

    def apply_enrolled(self, sample_ids: list[int], model_version: str | None) -> None:
        """Another replica enrolled these samples: index them (embeddings by the active model
        only; samples enrolled with another model are indexed when that model activates)."""
        active = self.active
        self.composition.add(self.store.sample_views(sample_ids))
        if model_version != active.version:
            return
        found = self.store.embeddings_of(sample_ids, active.version)
        if len(found.sample_ids):
            active.index.add(found.sample_ids, found.subject_ids, found.vectors)

    def apply_deleted(self, sample_ids: list[int]) -> None:
        """Another replica deleted these samples: forget them here too."""
        with self.write_lock:
            self._forget(sample_ids)

    def _forget(self, sample_ids: list[int]) -> None:
        """(Write lock held.) Deleted samples leave the index, the composition, the pictures."""
        self.active.index.remove(sample_ids)
        self.composition.remove(sample_ids)
        self.pictures.forget(sample_ids)

    def picture(self, sample_id: int, kind: Kind) -> bytes:
        """A stored sample's GEI or frame strip as PNG (cached); ``SampleNotFoundError``."""
        picture = self.pictures.get(sample_id, kind, lambda: self.store.silhouettes(sample_id))
        if not self.store.has_sample(sample_id):  # deleted while it was rendered
            self.pictures.forget([sample_id])
            raise SampleNotFoundError(f"no sample {sample_id} in the gallery")
        return picture

    def delete_subject(self, subject_id: str) -> int:
        with self._writing():
            removed = self.store.delete_subject(subject_id)
            self._forget(removed)
        return len(removed)

    def delete_sample(self, subject_id: str, sample_id: int) -> None:
        with self._writing():
            self.store.delete_sample(subject_id, sample_id)
            self._forget([sample_id])
