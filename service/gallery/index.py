"""The search index over part-normalised embeddings: exact for small galleries, approximate
(FAISS IVF over reduced vectors, re-ranked exactly) for large ones.

Vectors come from ``models.scoring.part_normalise``, so an inner product is the mean part cosine
similarity and ranks exactly as the protocol's ``cos`` distance. One index holds one model
version's embeddings; samples are keyed by their store ids.

**Exact** (``IndexFlatIP``) reads every vector for every query: about 1 ms per 1,000 samples
of 2,048 floats here. Its full vectors are always kept: they are the copy of record (scores,
``score_subject``, retraining) and answer every ``exact=True`` search.

**Removal erases at once.** A removed sample's full vector is overwritten with zeros where it
lies and its reduced copy leaves the lists, so no copy of it stays in memory; it leaves every
answer at once (searches pass FAISS an ``IDSelector`` that skips the removed ids). What stays is
its zeroed slot (a tombstone), reclaimed in one pass once the tombstones reach ``COMPACT_MIN`` or
``COMPACT_SHARE`` of the gallery: removing from a flat index shifts every vector after it (up
to 0.1 s at 100,000 samples with the lock held), so one pass for many removals.

**Approximate**: a query first finds a shortlist in an IVF index of the vectors projected onto
their ``reduced_dim`` (128) principal directions (uncentred, so inner products are kept as well
as that many dimensions can): the lists are trained around centroids and only the ``nprobe``
lists nearest the query are read, at 512 bytes a sample instead of 8 KB — reading lists, not
computing, is what an IVF search costs (README "Speed"). The shortlist (``SHORTLIST_FACTOR``
times the samples the answer needs, at least ``SHORTLIST_MIN``) is then scored exactly on the
full vectors, so every score returned is exact and only recall is approximate.

The ``auto`` policy switches to it once the gallery reaches ``approximate_from`` samples and
retrains it, in the background, each time the gallery has grown fourfold since the last
training (``nlist`` follows the gallery's size); searches go on meanwhile on the current index,
and writes made during a retraining are replayed onto the new one before the swap. The trained
projection and centroids can be kept in a folder, so a restart adds the vectors without training.

With the GPU build of FAISS (the ``gpu`` extra) and a visible GPU, exact searches of a gallery
without lists run on a GPU copy of the full vectors: additions go to both copies, a removal
compacts the CPU copy (the copy of record) at once and copies it to the GPU again (both cost a
pass over the gallery), and searches deeper than the GPU's k limit use the CPU copy. The
approximate index stays on the CPU.

Pieces: ``service.gallery.subjects`` (which subject a sample is), ``service.gallery.lists``
(building, keeping and reading the lists).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from service.gallery.lists import ApproximateLists
from service.gallery.policy import IndexPolicy
from service.gallery.subjects import SubjectBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubjectHit:
    """A subject's best-scoring sample for a query."""

    subject_id: str
    sample_id: int
    score: float


GPU_MAX_K = 2048  # FAISS GPU searches return at most this many neighbours
SHORTLIST_FACTOR = 2  # candidates scored exactly: this many times the samples needed …
SHORTLIST_MIN = 64  # … and at least this many
COMPACT_MIN = 256  # zeroed slots of removed samples kept until there are this many …
COMPACT_SHARE = 0.01  # … or this share of the vectors held, whichever is more


def shortlist_size(needed: int) -> int:
    """How many of the lists' best candidates are scored exactly, for ``needed`` samples."""
    return max(SHORTLIST_FACTOR * needed, SHORTLIST_MIN)


def gpu_count() -> int:
    """GPUs FAISS can use: 0 with the CPU build."""
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def _contents(vectors: faiss.IndexIDMap2) -> tuple[np.ndarray, np.ndarray]:
    """Every (id int64 [n], vector float32 [n, d]) the full-vector index holds."""
    ids = faiss.vector_to_array(vectors.id_map).astype(np.int64)
    return ids, faiss.downcast_index(vectors.index).reconstruct_n(0, vectors.ntotal)


def _erase(vectors: faiss.IndexIDMap2, ids: np.ndarray) -> None:
    """Overwrite these ids' vectors with zeros where they lie in the flat index's own memory
    (views of FAISS's buffers, no copies)."""
    count, dim = vectors.ntotal, vectors.d
    held_ids = faiss.rev_swig_ptr(vectors.id_map.data(), count)
    rows = np.flatnonzero(np.isin(held_ids, ids))
    flat = faiss.downcast_index(vectors.index)
    faiss.rev_swig_ptr(flat.get_xb(), count * dim).reshape(count, dim)[rows] = 0.0


class GalleryIndex:
    """Search over one model version's gallery; updates and searches are serialised by a lock.

    device: ``"auto"`` (a GPU when FAISS has one), ``"cpu"`` or ``"cuda"``. centroids_dir: where
    trained IVF projections and centroids are kept between starts (``None``: trained anew each
    start).
    """

    def __init__(
        self,
        dim: int,
        model_version: str,
        device: str = "auto",
        policy: IndexPolicy | None = None,
        centroids_dir: Path | None = None,
    ):
        self.dim = dim
        self.model_version = model_version
        self.policy = policy or IndexPolicy()
        self.centroids_dir = centroids_dir
        self._vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))  # the full vectors, by id
        self._lock = threading.Lock()
        self._lists = ApproximateLists(
            self.policy, dim, model_version, centroids_dir, self._lock, self._drop_gpu_copy
        )
        self._gpu_resources = None
        self._gpu_index = None
        if device != "cpu" and gpu_count() > 0:
            self._gpu_resources = faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._vectors)
        self._book = SubjectBook()
        self._removed: set[int] = set()  # tombstones: removed ids whose zeroed slots remain
        self._skip_removed: faiss.SearchParameters | None = None  # a selector of the others

    def __len__(self) -> int:
        return self._vectors.ntotal - len(self._removed)

    @property
    def held(self) -> int:
        """Slots held: the samples, and the zeroed slots of removed ones not compacted yet."""
        return self._vectors.ntotal

    @property
    def device(self) -> str:
        return "cuda" if self._gpu_index is not None else "cpu"

    @property
    def kind(self) -> str:
        """``"exact"`` or ``"approximate"``: the search answering now."""
        return "exact" if self._lists.index is None else "approximate"

    @property
    def lists(self) -> int:
        """The approximate index's ``nlist`` (0 while exact)."""
        return self._lists.nlist

    @property
    def subjects(self) -> int:
        return self._book.subjects

    def add(self, sample_ids: np.ndarray, subject_ids: list[str], vectors: np.ndarray) -> None:
        """In sample_ids: int64 [n], subject_ids: n strings, vectors: float32 [n, dim].
        Samples already in the index are left as they are (adding twice changes nothing).
        A large first addition (a start) builds the approximate index at once; growth past the
        policy's marks retrains it in the background."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors must be [n, {self.dim}]; got {vectors.shape}")
        with self._lock:
            new = [i for i, sample_id in enumerate(map(int, sample_ids))
                   if sample_id not in self._book]  # fmt: skip
            if not new:
                return
            ids = np.asarray(sample_ids, dtype=np.int64)
            if len(new) < len(ids):  # only then a copy: a start adds every vector at once
                ids, vectors = ids[new], vectors[new]
                subject_ids = [subject_ids[i] for i in new]
            revived = [sample_id for sample_id in map(int, ids) if sample_id in self._removed]
            if revived:  # an id used again: its zeroed slot goes first
                self._vectors.remove_ids(np.asarray(revived, dtype=np.int64))
                self._forget_tombstones(revived)
            if self._vectors.ntotal == 0 and self.policy.wants_lists(len(ids)):
                lists = self._lists.build(ids, vectors)  # first: nothing is added if it fails
                self._vectors.add_with_ids(vectors, ids)
                self._lists.swap_in(lists, len(ids))
            else:
                self._vectors.add_with_ids(vectors, ids)
                self._lists.add(ids, vectors)
                if self._gpu_index is not None:
                    self._gpu_index.add_with_ids(vectors, ids)
            for sample_id, subject_id in zip(map(int, ids), subject_ids, strict=True):
                self._book.add(sample_id, subject_id)
            self._lists.maybe_retrain(len(self), self._snapshot)

    def remove(self, sample_ids: list[int]) -> None:
        """The samples leave every answer now, and no copy of their vectors stays: the full
        vectors are zeroed in place and the reduced ones leave the lists; the zeroed slots go
        at the next compaction (``COMPACT_MIN``, ``COMPACT_SHARE``; never during a retraining,
        which snapshots them)."""
        with self._lock:
            gone = [i for i in map(int, sample_ids) if self._book.remove(i)]
            if not gone:
                return
            ids = np.asarray(gone, dtype=np.int64)
            self._lists.remove(ids)  # the lists being retrained, if any, lose them too
            if self._gpu_index is not None:  # a GPU copy is copied again: compact first
                self._vectors.remove_ids(ids)
                self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._vectors)
                return
            _erase(self._vectors, ids)
            self._removed.update(gone)
            self._skip_removed = None
            due = max(COMPACT_MIN, COMPACT_SHARE * self._vectors.ntotal)
            if len(self._removed) >= due and self._lists.replay is None:
                self._vectors.remove_ids(self._tombstones())
                self._forget_tombstones(list(self._removed))

    def _forget_tombstones(self, ids: list[int]) -> None:
        """(Lock held.) These slots are gone from the flat index."""
        self._removed.difference_update(ids)
        self._skip_removed = None

    def _tombstones(self) -> np.ndarray:
        """(Lock held.) The removed ids whose zeroed slots are still held: int64 [t]."""
        return np.fromiter(self._removed, np.int64, len(self._removed))

    def _search_parameters(self) -> faiss.SearchParameters | None:
        """(Lock held.) Flat-search parameters that skip the tombstones (None: there are none),
        made once per change of them."""
        if not self._removed:
            return None
        if self._skip_removed is None:
            batch = faiss.IDSelectorBatch(self._tombstones())
            skip = faiss.IDSelectorNot(batch)
            self._skip_parts = (batch, skip)  # FAISS's objects hold only pointers to these
            self._skip_removed = faiss.SearchParameters(sel=skip)
        return self._skip_removed

    def search(self, query: np.ndarray, top_k: int, exact: bool = False) -> list[SubjectHit]:
        """The ``top_k`` best subjects for one query vector [dim], each by its best sample.

        In one search: only samples of the ``top_k - 1`` better subjects can outscore the
        ``top_k``-th subject's best sample, so it is among the first
        ``(top_k - 1) * (most samples of any subject) + 1`` samples. Exact with an exact index
        or ``exact=True``; otherwise the best of the lists' shortlist, scored exactly.
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        faiss.omp_set_num_threads(self.policy.threads)  # per thread: set where it searches
        with self._lock:
            total = len(self)
            if total == 0:
                return []
            needed = min(total, (top_k - 1) * self._book.most + 1)
            if self._lists.index is None or exact:
                scores, ids = self._search_exact(query, needed)
            else:
                scores, ids = self._search_lists(query, needed)
            best: dict[str, SubjectHit] = {}
            for score, sample_id in zip(scores, ids, strict=True):
                subject = self._book.subject_of[int(sample_id)]
                if subject not in best:  # results come best first
                    best[subject] = SubjectHit(subject, int(sample_id), float(score))
            return list(best.values())[:top_k]

    def _search_exact(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Lock held.) Scores float32 and ids int64 of the best k samples, best first."""
        if self._gpu_index is not None and k <= GPU_MAX_K:  # no tombstones with a GPU copy
            scores, ids = self._gpu_index.search(query, k)
        else:
            scores, ids = self._vectors.search(query, k, params=self._search_parameters())
        found = ids[0] >= 0
        return scores[0][found], ids[0][found]

    def _search_lists(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Lock held.) The best k of the probed lists' shortlist (removed samples left the
        lists), scored on the full vectors."""
        candidates = self._lists.candidates(query, min(len(self), shortlist_size(k)))
        if len(candidates) == 0:
            return np.empty(0, np.float32), candidates
        scores = self._vectors.reconstruct_batch(candidates) @ query[0]
        best = np.argsort(-scores, kind="stable")[:k]
        return scores[best], candidates[best]

    def score_subject(self, query: np.ndarray, subject_id: str) -> SubjectHit | None:
        """The subject's best sample score for ``query``, or ``None`` if it has no samples."""
        with self._lock:
            ids = sorted(self._book.samples_of.get(subject_id, ()))
            if not ids:
                return None
            vectors = self._vectors.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        scores = vectors @ np.asarray(query, dtype=np.float32).reshape(-1)
        best = int(np.argmax(scores))
        return SubjectHit(subject_id, ids[best], float(scores[best]))

    def wait_for_retraining(self, timeout: float | None = None) -> None:
        """Block until a background retraining (if any) has swapped in its index."""
        self._lists.wait(timeout)

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(Lock held.) The gallery's ids and full vectors for a retraining, zeroed slots out."""
        ids, vectors = _contents(self._vectors)
        if self._removed:
            kept = ~np.isin(ids, self._tombstones())
            ids, vectors = ids[kept], vectors[kept]
        return ids, vectors

    def _drop_gpu_copy(self) -> None:
        """(Lock held.) Once lists answer, the GPU copy of the exact index goes (the
        approximate index stays on the CPU)."""
        self._gpu_index = None
