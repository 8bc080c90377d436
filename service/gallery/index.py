"""The search index over part-normalised embeddings: exact for small galleries, approximate
(FAISS IVF over reduced vectors, re-ranked exactly) for large ones.

Vectors come from ``models.scoring.part_normalise``, so an inner product is the mean part cosine
similarity and ranks exactly as the protocol's ``cos`` distance. One index holds one model
version's embeddings; samples are keyed by their store ids.

**Exact** (``IndexFlatIP``) reads every vector for every query: about 1 ms per 1,000 samples
of 2,048 floats here. Its full vectors are always kept: they are the copy of record (scores,
``score_subject``, retraining) and answer every ``exact=True`` search.

**Removal** marks a sample removed (a tombstone): it leaves the answers at once, and searches
ask for as many more results as there are tombstones and skip them. The vectors themselves go
in one pass once the tombstones reach ``COMPACT_MIN`` or ``COMPACT_SHARE`` of the gallery:
removing from a flat index shifts every vector after it (up to 0.1 s at 100,000 samples, with
the lock held), so one pass for many removals instead of one each (README "Speed").

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
rebuilds the GPU copy from the CPU one (the copy of record), and searches deeper than the GPU's
k limit use the CPU copy. The approximate index stays on the CPU.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from service.threads import lower_this_thread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubjectHit:
    """A subject's best-scoring sample for a query."""

    subject_id: str
    sample_id: int
    score: float


@dataclass(frozen=True)
class IndexPolicy:
    """Which search a gallery gets. kind: ``auto`` (exact below ``approximate_from`` samples,
    approximate from there), ``exact`` or ``approximate`` (from ``MIN_TRAINING`` samples: fewer
    cannot train the lists). reduced_dim: the dimensions the lists keep of each vector (all of
    them when the vectors have no more)."""

    kind: Literal["auto", "exact", "approximate"] = "auto"
    approximate_from: int = 5_000
    nprobe: int = 16
    threads: int = 1  # OpenMP threads of one search (README "Speed": 1 is fastest here)
    reduced_dim: int = 128

    def wants_lists(self, samples: int) -> bool:
        if self.kind == "exact" or samples < MIN_TRAINING:
            return False
        return self.kind == "approximate" or samples >= self.approximate_from


GPU_MAX_K = 2048  # FAISS GPU searches return at most this many neighbours
MIN_TRAINING = 2_000  # fewer samples train too few lists to be worth it
POINTS_PER_LIST = 40  # training sample: FAISS wants at least 39 points per centroid
KMEANS_ITERATIONS = 10  # FAISS's default is 25: 2.5× the training time (README "Speed")
REGROW = 4  # retrain when the gallery has grown this many times since the last training
SHORTLIST_FACTOR = 2  # candidates scored exactly: this many times the samples needed …
SHORTLIST_MIN = 64  # … and at least this many
COMPACT_MIN = 256  # removed samples kept as tombstones until there are this many …
COMPACT_SHARE = 0.01  # … or this share of the vectors held, whichever is more


def list_count(samples: int) -> int:
    """``nlist`` for a gallery: about 2·√n, a power of two, at least 16, at most 4,096, and
    no more than the samples can train (``POINTS_PER_LIST`` a list)."""
    wanted = 2 ** round(math.log2(2 * math.sqrt(max(samples, 1))))
    trainable = 2 ** math.floor(math.log2(max(samples // POINTS_PER_LIST, 1)))
    return int(max(16, min(4096, wanted, trainable)))


def shortlist_size(needed: int) -> int:
    """How many of the lists' best candidates are scored exactly, for ``needed`` samples."""
    return max(SHORTLIST_FACTOR * needed, SHORTLIST_MIN)


def gpu_count() -> int:
    """GPUs FAISS can use: 0 with the CPU build."""
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def principal_directions(vectors: np.ndarray, dims: int) -> np.ndarray:
    """float32 [dims, d]: the top eigenvectors of the vectors' (uncentred) second moment, so
    ``(A x) · (A q)`` is the best ``dims``-dimensional approximation of ``x · q`` for vectors
    like these. numpy's LAPACK, not FAISS's PCA: 1.5 s instead of 14 s for d = 2,048 here."""
    second_moment = (vectors.T @ vectors).astype(np.float64)  # [d, d]: no float64 copy of all
    _, eigenvectors = np.linalg.eigh(second_moment)  # ascending eigenvalues
    return np.ascontiguousarray(eigenvectors[:, ::-1][:, :dims].T, dtype=np.float32)


def _contents(vectors: faiss.IndexIDMap2) -> tuple[np.ndarray, np.ndarray]:
    """Every (id int64 [n], vector float32 [n, d]) the full-vector index holds."""
    ids = faiss.vector_to_array(vectors.id_map).astype(np.int64)
    return ids, faiss.downcast_index(vectors.index).reconstruct_n(0, vectors.ntotal)


def _lists_name(version: str, nlist: int, reduced: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in version)
    return f"{safe}.{nlist}.{reduced}.ivf"


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
        self._lists: faiss.Index | None = None  # IVF over reduced vectors, once trained
        self._probe: faiss.SearchParametersPreTransform | None = None  # nprobe of ``_lists``
        self._trained_at = 0  # gallery size at the last training of the lists (0: exact)
        self._gpu_resources = None
        self._gpu_index = None
        if device != "cpu" and gpu_count() > 0:
            self._gpu_resources = faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._vectors)
        self._subject_of: dict[int, str] = {}
        self._samples_of: dict[str, set[int]] = {}
        self._most = 0  # the most samples any one subject has
        self._with_size: Counter[int] = Counter()  # samples a subject has → subjects with so many
        self._removed: set[int] = set()  # tombstones: removed, their vectors still held
        self._lock = threading.Lock()
        self._replay: list[tuple[str, np.ndarray, np.ndarray | None]] | None = None
        self._retraining: threading.Thread | None = None

    def __len__(self) -> int:
        return self._vectors.ntotal - len(self._removed)

    @property
    def held(self) -> int:
        """Vectors held: the samples, and removed ones not compacted away yet."""
        return self._vectors.ntotal

    @property
    def device(self) -> str:
        return "cuda" if self._gpu_index is not None else "cpu"

    @property
    def kind(self) -> str:
        """``"exact"`` or ``"approximate"``: the search answering now."""
        return "exact" if self._lists is None else "approximate"

    @property
    def lists(self) -> int:
        """The approximate index's ``nlist`` (0 while exact)."""
        return 0 if self._lists is None else _ivf(self._lists).nlist

    @property
    def subjects(self) -> int:
        return len(self._samples_of)

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
                   if sample_id not in self._subject_of]  # fmt: skip
            if not new:
                return
            ids = np.asarray(sample_ids, dtype=np.int64)
            if len(new) < len(ids):  # only then a copy: a start adds every vector at once
                ids, vectors = ids[new], vectors[new]
                subject_ids = [subject_ids[i] for i in new]
            revived = [sample_id for sample_id in map(int, ids) if sample_id in self._removed]
            if revived:  # an id used again: its old vector goes first
                self._purge(np.asarray(revived, dtype=np.int64))
                self._removed.difference_update(revived)
            if self._vectors.ntotal == 0 and self.policy.wants_lists(len(ids)):
                lists = self._lists_of(ids, vectors)  # first: nothing is added if it fails
                self._vectors.add_with_ids(vectors, ids)
                self._swap_in(lists, len(ids))
            else:
                self._vectors.add_with_ids(vectors, ids)
                if self._lists is not None:
                    self._lists.add_with_ids(vectors, ids)
                if self._gpu_index is not None:
                    self._gpu_index.add_with_ids(vectors, ids)
            if self._replay is not None:  # a retraining is running: its lists need them too
                self._replay.append(("add", ids, vectors))
            for sample_id, subject_id in zip(map(int, ids), subject_ids, strict=True):
                self._subject_of[sample_id] = subject_id
                samples = self._samples_of.setdefault(subject_id, set())
                samples.add(sample_id)
                self._resized(len(samples) - 1, len(samples))
            self._maybe_retrain()

    def remove(self, sample_ids: list[int]) -> None:
        """Tombstones: the samples leave every answer now, their vectors at the next compaction
        (``COMPACT_MIN``, ``COMPACT_SHARE``; never during a retraining, which snapshots them)."""
        with self._lock:
            for sample_id in map(int, sample_ids):
                subject_id = self._subject_of.pop(sample_id, None)
                if subject_id is None:
                    continue
                self._removed.add(sample_id)
                samples = self._samples_of[subject_id]
                samples.discard(sample_id)
                self._resized(len(samples) + 1, len(samples))
                if not samples:
                    del self._samples_of[subject_id]
            due = max(COMPACT_MIN, COMPACT_SHARE * self._vectors.ntotal)
            if len(self._removed) >= due and self._replay is None:
                self._purge(self._tombstones())
                self._removed.clear()

    def _resized(self, before: int, after: int) -> None:
        """(Lock held.) A subject went from ``before`` to ``after`` samples (one more or one
        fewer): ``_most`` follows in constant time, not a pass over every subject."""
        self._with_size[before] -= 1
        self._with_size[after] += 1
        grew = after > self._most
        if grew or (before == self._most and self._with_size[before] <= 0):
            self._most = after

    def _tombstones(self) -> np.ndarray:
        """(Lock held.) The removed ids whose vectors are still held: int64 [t]."""
        return np.fromiter(self._removed, np.int64, len(self._removed))

    def _purge(self, ids: np.ndarray) -> None:
        """(Lock held.) Remove these ids' vectors from every structure that holds them."""
        self._vectors.remove_ids(ids)
        if self._lists is not None:
            self._lists.remove_ids(ids)
        if self._gpu_index is not None:
            # GPU flat indexes cannot remove: copy again
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._vectors)
        if self._replay is not None:  # the lists being trained hold them too
            self._replay.append(("remove", ids, None))

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
            needed = min(total, (top_k - 1) * self._most + 1)
            if self._lists is None or exact:
                scores, ids = self._search_exact(query, needed)
            else:
                scores, ids = self._search_lists(query, needed)
            best: dict[str, SubjectHit] = {}
            for score, sample_id in zip(scores, ids, strict=True):
                subject = self._subject_of.get(int(sample_id))  # None: a tombstone
                if subject is not None and subject not in best:  # results come best first
                    best[subject] = SubjectHit(subject, int(sample_id), float(score))
            return list(best.values())[:top_k]

    def _search_exact(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Lock held.) Scores float32 and ids int64 of the best k samples, best first; with
        tombstones among them when there are some (as many more are asked for)."""
        k = min(self._vectors.ntotal, k + len(self._removed))
        if self._gpu_index is not None and k <= GPU_MAX_K:
            scores, ids = self._gpu_index.search(query, k)
        else:
            scores, ids = self._vectors.search(query, k)
        found = ids[0] >= 0
        return scores[0][found], ids[0][found]

    def _search_lists(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Lock held.) The best k of the probed lists' shortlist, scored on the full vectors;
        tombstones are left out."""
        shortlist = shortlist_size(k)
        wanted = min(self._vectors.ntotal, shortlist + len(self._removed))
        _, found = self._lists.search(query, wanted, params=self._probe)
        candidates = found[0][found[0] >= 0]
        if self._removed:  # best first: the shortlist is the first that are not tombstones
            candidates = candidates[~np.isin(candidates, self._tombstones())][:shortlist]
        if len(candidates) == 0:
            return np.empty(0, np.float32), candidates
        scores = self._vectors.reconstruct_batch(candidates) @ query[0]
        best = np.argsort(-scores, kind="stable")[:k]
        return scores[best], candidates[best]

    def score_subject(self, query: np.ndarray, subject_id: str) -> SubjectHit | None:
        """The subject's best sample score for ``query``, or ``None`` if it has no samples."""
        with self._lock:
            ids = sorted(self._samples_of.get(subject_id, ()))
            if not ids:
                return None
            vectors = self._vectors.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        scores = vectors @ np.asarray(query, dtype=np.float32).reshape(-1)
        best = int(np.argmax(scores))
        return SubjectHit(subject_id, ids[best], float(scores[best]))

    def wait_for_retraining(self, timeout: float | None = None) -> None:
        """Block until a background retraining (if any) has swapped in its index."""
        thread = self._retraining
        if thread is not None:
            thread.join(timeout)

    # --- the approximate index

    def _lists_of(self, ids: np.ndarray, vectors: np.ndarray) -> faiss.IndexPreTransform:
        """An IVF index of these vectors' reduced forms, on a kept projection and centroids
        when there are some for its size."""
        nlist = list_count(len(ids))
        reduced = min(self.policy.reduced_dim, self.dim)
        kept = None
        if self.centroids_dir is not None:
            kept = self.centroids_dir / _lists_name(self.model_version, nlist, reduced)
        lists = _read_kept(kept) if kept is not None and kept.is_file() else None
        if lists is None:
            picked = np.random.default_rng(0).permutation(len(ids))[: POINTS_PER_LIST * nlist]
            sample = vectors[np.sort(picked)]
            projection = faiss.LinearTransform(self.dim, reduced, False)
            faiss.copy_array_to_vector(principal_directions(sample, reduced).ravel(), projection.A)
            projection.is_trained = True
            ivf = faiss.IndexIVFFlat(
                faiss.IndexFlatIP(reduced), reduced, nlist, faiss.METRIC_INNER_PRODUCT
            )
            ivf.cp.niter = KMEANS_ITERATIONS
            lists = faiss.IndexPreTransform(projection, ivf)
            lists.train(sample)
            if kept is not None:
                _keep(lists, kept)
        lists.add_with_ids(vectors, ids)
        log.info(
            "approximate index built",
            extra={"samples": len(ids), "lists": nlist, "reduced_dim": reduced},
        )
        return lists

    def _swap_in(self, lists: faiss.IndexPreTransform, trained_at: int) -> None:
        """(Lock held.) Answer from ``lists`` from now on; a GPU copy of the exact index goes."""
        self._lists, self._trained_at, self._gpu_index = lists, trained_at, None
        # made once per index (each search reuses them): FAISS's Python objects own each other
        # only through these references
        self._probe_ivf = faiss.SearchParametersIVF(
            nprobe=min(self.policy.nprobe, _ivf(lists).nlist)
        )
        self._probe = faiss.SearchParametersPreTransform()
        self._probe.index_params = self._probe_ivf

    def _maybe_retrain(self) -> None:
        """(Lock held.) Start a background (re)training when the gallery outgrew its index."""
        total = len(self)
        due = self.policy.wants_lists(total) and (
            self._trained_at == 0 or total >= REGROW * self._trained_at
        )
        if due and self._retraining is None:
            self._retraining = threading.Thread(
                target=self._retrain, name="index-retrain", daemon=True
            )
            self._retraining.start()

    def _retrain(self) -> None:
        lower_this_thread()  # live searches first
        try:
            with self._lock:  # writes from here on are replayed onto the new index
                ids, vectors = _contents(self._vectors)
                if self._removed:  # tombstones stay out of the new lists
                    kept = ~np.isin(ids, self._tombstones())
                    ids, vectors = ids[kept], vectors[kept]
                self._replay = []
            lists = self._lists_of(ids, vectors)
            del vectors
            with self._lock:
                for action, changed, added in self._replay or []:
                    if action == "add":
                        lists.add_with_ids(added, changed)
                    else:
                        lists.remove_ids(changed)
                self._swap_in(lists, len(ids))
        except Exception:  # the current index keeps answering
            log.exception("retraining the approximate index failed")
        finally:
            with self._lock:
                self._replay, self._retraining = None, None


def _read_kept(path: Path) -> faiss.Index | None:
    """Kept lists, or ``None`` (they are trained again) when the file cannot be read."""
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        log.warning("kept centroids unreadable; training anew", extra={"path": str(path)})
        return None


def _keep(lists: faiss.IndexPreTransform, path: Path) -> None:
    """Write the trained, empty lists (projection and centroids) for the next start; a start
    never reads a half-written file, and a failed write only costs the next start a training."""
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        faiss.write_index(lists, str(partial))
        partial.replace(path)
    except (OSError, RuntimeError):
        log.warning("trained centroids not kept", extra={"path": str(path)}, exc_info=True)


def _ivf(lists: faiss.IndexPreTransform) -> faiss.IndexIVFFlat:
    return faiss.downcast_index(lists.index)
