"""The approximate index's lists: an IVF index over vectors projected onto their principal
directions, trained (or read back from a kept file) for a gallery's size.

FAISS's ``IndexRefineFlat`` does the shortlist-then-rerank the gallery index does by hand, but
it cannot remove ids (``remove_ids`` raises), and a gallery removes samples: the rerank stays
in ``service.gallery.index``, on the full vectors it keeps anyway.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger("service.gallery.index")

POINTS_PER_LIST = 40  # training sample: FAISS wants at least 39 points per centroid
KMEANS_ITERATIONS = 10  # FAISS's default is 25: 2.5× the training time (README "Speed")


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
