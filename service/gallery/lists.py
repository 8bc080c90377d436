"""The approximate index's lists: an IVF index over vectors projected onto their principal
directions, trained (or read back from a kept file) for a gallery's size, and retrained in the
background as the gallery grows (``ApproximateLists``).

FAISS's ``IndexRefineFlat`` does the shortlist-then-rerank the gallery index does by hand, but
it cannot remove ids (``remove_ids`` raises), and a gallery removes samples: the rerank stays
in ``service.gallery.index``, on the full vectors it keeps anyway.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from service.gallery.policy import IndexPolicy
from service.threads import lower_this_thread

log = logging.getLogger("service.gallery.index")

POINTS_PER_LIST = 40  # training sample: FAISS wants at least 39 points per centroid
KMEANS_ITERATIONS = 10  # FAISS's default is 25: 2.5× the training time (README "Speed")
REGROW = 4  # retrain when the gallery has grown this many times since the last training


def list_count(samples: int) -> int:
    """``nlist`` for a gallery: about 2·√n, a power of two, at least 16, at most 4,096, and
    no more than the samples can train (``POINTS_PER_LIST`` a list)."""
    wanted = 2 ** round(math.log2(2 * math.sqrt(max(samples, 1))))
    trainable = 2 ** math.floor(math.log2(max(samples // POINTS_PER_LIST, 1)))
    return int(max(16, min(4096, wanted, trainable)))


def principal_directions(vectors: np.ndarray, dims: int) -> np.ndarray:
    """float32 [dims, d]: the top eigenvectors of the vectors' (uncentred) second moment, so
    ``(A x) · (A q)`` is the best ``dims``-dimensional approximation of ``x · q`` for vectors
    like these. numpy's LAPACK, not FAISS's PCA: 1.5 s instead of 14 s for d = 2,048 here."""
    second_moment = (vectors.T @ vectors).astype(np.float64)  # [d, d]: no float64 copy of all
    _, eigenvectors = np.linalg.eigh(second_moment)  # ascending eigenvalues
    return np.ascontiguousarray(eigenvectors[:, ::-1][:, :dims].T, dtype=np.float32)


def build_lists(
    ids: np.ndarray, vectors: np.ndarray, reduced: int, kept: Path | None
) -> faiss.IndexPreTransform:
    """An IVF index of these vectors' reduced forms (``reduced`` dimensions), holding them; on
    the projection and centroids kept at ``kept`` when that file is there, else trained here
    (and kept there)."""
    nlist = list_count(len(ids))
    dim = vectors.shape[1]
    lists = read_kept(kept) if kept is not None and kept.is_file() else None
    if lists is None:
        picked = np.random.default_rng(0).permutation(len(ids))[: POINTS_PER_LIST * nlist]
        sample = vectors[np.sort(picked)]
        projection = faiss.LinearTransform(dim, reduced, False)
        faiss.copy_array_to_vector(principal_directions(sample, reduced).ravel(), projection.A)
        projection.is_trained = True
        ivf = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(reduced), reduced, nlist, faiss.METRIC_INNER_PRODUCT
        )
        ivf.cp.niter = KMEANS_ITERATIONS
        lists = faiss.IndexPreTransform(projection, ivf)
        lists.train(sample)
        if kept is not None:
            keep(lists, kept)
    lists.add_with_ids(vectors, ids)
    log.info(
        "approximate index built",
        extra={"samples": len(ids), "lists": nlist, "reduced_dim": reduced},
    )
    return lists


def kept_name(version: str, nlist: int, reduced: int) -> str:
    """The file name of a model version's kept lists of one size."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in version)
    return f"{safe}.{nlist}.{reduced}.ivf"


def read_kept(path: Path) -> faiss.Index | None:
    """Kept lists, or ``None`` (they are trained again) when the file cannot be read."""
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        log.warning("kept centroids unreadable; training anew", extra={"path": str(path)})
        return None


def keep(lists: faiss.IndexPreTransform, path: Path) -> None:
    """Write the trained, empty lists (projection and centroids) for the next start; a start
    never reads a half-written file, and a failed write only costs the next start a training."""
    partial = path.with_name(path.name + ".partial")
    if lists.ntotal:
        raise ValueError("only empty lists are kept: a kept file holds no vector of the gallery")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        faiss.write_index(lists, str(partial))
        partial.replace(path)
    except (OSError, RuntimeError):
        log.warning("trained centroids not kept", extra={"path": str(path)}, exc_info=True)


def ivf_of(lists: faiss.IndexPreTransform) -> faiss.IndexIVFFlat:
    return faiss.downcast_index(lists.index)


class ApproximateLists:
    """The approximate index of one gallery: its lists (none while the gallery searches
    exactly), the search parameters made for them, and their retraining in the background as
    the gallery grows, with the writes made meanwhile replayed onto the new lists. Not
    thread-safe by itself: its gallery index calls it with its lock held, and hands the lock
    over for the retraining (``lock``)."""

    def __init__(
        self,
        policy: IndexPolicy,
        dim: int,
        model_version: str,
        centroids_dir: Path | None,
        lock: threading.Lock,
        on_swap: Callable[[], None] = lambda: None,
    ):
        self.policy, self.dim = policy, dim
        self._on_swap = on_swap  # (lock held) after new lists answer
        self.model_version, self.centroids_dir = model_version, centroids_dir
        self._lock = lock
        self.index: faiss.IndexPreTransform | None = None
        self.trained_at = 0  # gallery size at the last training (0: never trained)
        self._probe: faiss.SearchParametersPreTransform | None = None
        self.replay: list[tuple[str, np.ndarray, np.ndarray | None]] | None = None
        """While a retraining runs: the writes its new lists will need (else None)."""
        self._retraining: threading.Thread | None = None
        self._generation = 0  # lists swapped in so far: a retraining drops lists made stale

    @property
    def nlist(self) -> int:
        return 0 if self.index is None else ivf_of(self.index).nlist

    def build(self, ids: np.ndarray, vectors: np.ndarray) -> faiss.IndexPreTransform:
        """New lists of these vectors (kept in ``centroids_dir`` for the next start)."""
        reduced = min(self.policy.reduced_dim, self.dim)
        kept = None
        if self.centroids_dir is not None:
            name = kept_name(self.model_version, list_count(len(ids)), reduced)
            kept = self.centroids_dir / name
        return build_lists(ids, vectors, reduced, kept)

    def swap_in(self, lists: faiss.IndexPreTransform, trained_at: int) -> None:
        """Answer from ``lists`` from now on."""
        self.index, self.trained_at = lists, trained_at
        self._generation += 1
        self._on_swap()
        # made once per index (each search reuses them): FAISS's Python objects own each other
        # only through these references
        self._probe_ivf = faiss.SearchParametersIVF(nprobe=min(self.policy.nprobe, self.nlist))
        self._probe = faiss.SearchParametersPreTransform()
        self._probe.index_params = self._probe_ivf

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self.index is not None:
            self.index.add_with_ids(vectors, ids)
        if self.replay is not None:
            self.replay.append(("add", ids, vectors))

    def remove(self, ids: np.ndarray) -> None:
        if self.index is not None:
            self.index.remove_ids(ids)
        if self.replay is not None:
            self.replay.append(("remove", ids, None))

    def candidates(self, query: np.ndarray, wanted: int) -> np.ndarray:
        """Ids of the probed lists' best ``wanted`` samples for ``query`` [1, dim], best first."""
        _, found = self.index.search(query, wanted, params=self._probe)
        return found[0][found[0] >= 0]

    def maybe_retrain(
        self, total: int, snapshot: Callable[[], tuple[np.ndarray, np.ndarray]]
    ) -> None:
        """(Lock held.) Start a background (re)training when a gallery of ``total`` samples has
        outgrown its lists; ``snapshot()`` (called with the lock held) gives its vectors."""
        due = self.policy.wants_lists(total) and (
            self.trained_at == 0 or total >= REGROW * self.trained_at
        )
        if due and self._retraining is None:
            self._retraining = threading.Thread(
                target=self._retrain, args=(snapshot,), name="index-retrain", daemon=True
            )
            self._retraining.start()

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background retraining (if any) has swapped in its lists."""
        thread = self._retraining
        if thread is not None:
            thread.join(timeout)

    def _retrain(self, snapshot: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
        try:
            lower_this_thread()  # live searches first
            with self._lock:  # writes from here on are replayed onto the new lists
                ids, vectors = snapshot()
                self.replay, generation = [], self._generation
            lists = self.build(ids, vectors)
            del vectors
            with self._lock:
                if self._generation != generation:  # lists were built meanwhile, of every
                    return  # vector then (a gallery emptied and filled again): they stay
                for action, changed, added in self.replay or []:
                    if action == "add":
                        lists.add_with_ids(added, changed)
                    else:
                        lists.remove_ids(changed)
                self.swap_in(lists, lists.ntotal)
        except Exception:  # the current lists keep answering
            log.exception("retraining the approximate index failed")
        finally:
            with self._lock:
                self.replay, self._retraining = None, None
