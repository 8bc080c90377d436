"""The search index: exact inner product (FAISS ``IndexFlatIP``) over part-normalised embeddings.

Vectors come from ``models.scoring.part_normalise``, so an inner product is the mean part cosine
similarity and ranks exactly as the protocol's ``cos`` distance. One index holds one model
version's embeddings; samples are keyed by their store ids.

With the GPU build of FAISS (the ``gpu`` extra) and a visible GPU, searches run on a GPU copy of
the index: additions go to both copies, a removal rebuilds the GPU copy from the CPU one (the
copy of record), and searches deeper than the GPU's k limit use the CPU copy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True)
class SubjectHit:
    """A subject's best-scoring sample for a query."""

    subject_id: str
    sample_id: int
    score: float


GPU_MAX_K = 2048  # FAISS GPU searches return at most this many neighbours


def gpu_count() -> int:
    """GPUs FAISS can use: 0 with the CPU build."""
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


class GalleryIndex:
    """Search over one model version's gallery; updates and searches are serialised by a lock.

    device: ``"auto"`` (a GPU when FAISS has one), ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, dim: int, model_version: str, device: str = "auto"):
        self.dim = dim
        self.model_version = model_version
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._gpu_resources = None
        self._gpu_index = None
        if device != "cpu" and gpu_count() > 0:
            self._gpu_resources = faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)
        self._subject_of: dict[int, str] = {}
        self._samples_of: dict[str, set[int]] = {}
        self._most = 0  # the most samples any one subject has
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._index.ntotal

    @property
    def device(self) -> str:
        return "cuda" if self._gpu_index is not None else "cpu"

    @property
    def subjects(self) -> int:
        return len(self._samples_of)

    def add(self, sample_ids: np.ndarray, subject_ids: list[str], vectors: np.ndarray) -> None:
        """In sample_ids: int64 [n], subject_ids: n strings, vectors: float32 [n, dim].
        Samples already in the index are left as they are (adding twice changes nothing)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors must be [n, {self.dim}]; got {vectors.shape}")
        with self._lock:
            new = [i for i, sample_id in enumerate(map(int, sample_ids))
                   if sample_id not in self._subject_of]  # fmt: skip
            if not new:
                return
            ids = np.asarray(sample_ids, dtype=np.int64)[new]
            vectors = vectors[new]
            subject_ids = [subject_ids[i] for i in new]
            self._index.add_with_ids(vectors, ids)
            if self._gpu_index is not None:
                self._gpu_index.add_with_ids(vectors, ids)
            for sample_id, subject_id in zip(map(int, ids), subject_ids, strict=True):
                self._subject_of[sample_id] = subject_id
                self._samples_of.setdefault(subject_id, set()).add(sample_id)
                self._most = max(self._most, len(self._samples_of[subject_id]))

    def remove(self, sample_ids: list[int]) -> None:
        with self._lock:
            self._index.remove_ids(np.asarray(sample_ids, dtype=np.int64))
            if self._gpu_index is not None:  # GPU flat indexes cannot remove: copy again
                self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)
            for sample_id in map(int, sample_ids):
                subject_id = self._subject_of.pop(sample_id, None)
                samples = self._samples_of.get(subject_id, set())
                samples.discard(sample_id)
                if not samples:
                    self._samples_of.pop(subject_id, None)
            self._most = max(map(len, self._samples_of.values()), default=0)

    def search(self, query: np.ndarray, top_k: int) -> list[SubjectHit]:
        """The ``top_k`` best subjects for one query vector [dim], each by its best sample.

        Exact, in one search: only samples of the ``top_k - 1`` better subjects can outscore the
        ``top_k``-th subject's best sample, so it is among the first
        ``(top_k - 1) * (most samples of any subject) + 1`` samples.
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        with self._lock:
            total = self._index.ntotal
            if total == 0:
                return []
            scores, ids = self._search(query, min(total, (top_k - 1) * self._most + 1))
            best: dict[str, SubjectHit] = {}
            for score, sample_id in zip(scores[0], ids[0], strict=True):
                if sample_id < 0:
                    continue
                subject = self._subject_of[int(sample_id)]
                if subject not in best:  # results come best first
                    best[subject] = SubjectHit(subject, int(sample_id), float(score))
            return list(best.values())[:top_k]

    def _search(self, query: np.ndarray, k: int):
        if self._gpu_index is not None and k <= GPU_MAX_K:
            return self._gpu_index.search(query, k)
        return self._index.search(query, k)

    def score_subject(self, query: np.ndarray, subject_id: str) -> SubjectHit | None:
        """The subject's best sample score for ``query``, or ``None`` if it has no samples."""
        with self._lock:
            ids = sorted(self._samples_of.get(subject_id, ()))
            if not ids:
                return None
            vectors = np.stack([self._index.reconstruct(int(s)) for s in ids])
        scores = vectors @ np.asarray(query, dtype=np.float32).reshape(-1)
        best = int(np.argmax(scores))
        return SubjectHit(subject_id, ids[best], float(scores[best]))
