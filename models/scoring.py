"""Embedding layout and similarity, shared by evaluation, calibration and the service (numpy).

An embedding is ``float32 [c, p]``: ``c`` channels for each of ``p`` horizontal body parts. The
similarity of two embeddings is the mean over parts of the cosine similarity of their part
vectors, in [-1, 1]; 1 − similarity is the protocol's ``cos`` distance. Normalising every part to
unit length and scaling by 1/sqrt(p) turns it into a plain inner product of flattened vectors,
which is what a FAISS inner-product index serves.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def part_normalise(feats: np.ndarray) -> np.ndarray:
    """In feats: [n, c, p]. Out float32 [n, c * p] whose inner products are mean part cosines."""
    feats = np.asarray(feats, dtype=np.float32)
    if feats.ndim != 3:
        raise ValueError(f"embeddings must be [n, c, p]; got shape {feats.shape}")
    n, _, p = feats.shape
    norms = np.linalg.norm(feats, axis=1, keepdims=True)  # [n, 1, p]
    unit = feats / np.maximum(norms, _EPS) / np.float32(np.sqrt(p))  # float32 throughout
    return np.ascontiguousarray(unit.reshape(n, -1))


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """In a: [m, c, p], b: [g, c, p]. Out float32 [m, g]: mean over parts of cosine similarity."""
    return part_normalise(a) @ part_normalise(b).T


def accepts(score: float, threshold: float) -> bool:
    """The decision rule: accept when ``score >= threshold``, both taken as float32, the precision
    scores are computed in (evaluation and calibration compare so too; a threshold typed as
    0.7 is float32's 0.69999999, which a score of exactly that passes everywhere alike)."""
    return bool(np.float32(score) >= np.float32(threshold))
