"""P×K batches and frame windows, drawn from a :class:`SilhouetteCache` (numpy only).

Batches are a pure function of ``(seed, iteration)``: resuming at iteration i draws exactly the
batches an uninterrupted run would have drawn, and every rank draws the same global batch before
taking its own share of subjects (so ranks never overlap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.data.cache import SilhouetteCache


def batch_rng(seed: int, iteration: int, stream: int = 0) -> np.random.Generator:
    """The random stream for one iteration (stream 0: batch composition; 1+: other uses)."""
    return np.random.default_rng([seed, iteration, stream])


@dataclass
class PKSampler:
    """P subjects × K sequences per batch; rank ``rank`` of ``world`` keeps P / world subjects.

    sequence_subjects: str [S], the subject of every sequence in the cache
    """

    sequence_subjects: np.ndarray
    subjects_per_batch: int
    sequences_per_subject: int
    seed: int = 0
    rank: int = 0
    world: int = 1

    def __post_init__(self):
        self.subject_ids, self.labels = np.unique(self.sequence_subjects, return_inverse=True)
        if self.subjects_per_batch > len(self.subject_ids):
            raise ValueError(
                f"P={self.subjects_per_batch} subjects per batch, but the data has only "
                f"{len(self.subject_ids)}"
            )
        if self.subjects_per_batch % self.world:
            raise ValueError(f"P={self.subjects_per_batch} must divide among {self.world} ranks")
        self.sequences_of = [np.flatnonzero(self.labels == s) for s in range(len(self.subject_ids))]

    @property
    def num_classes(self) -> int:
        return len(self.subject_ids)

    def batch(self, iteration: int) -> tuple[np.ndarray, np.ndarray]:
        """Sequence indices int64 [P/world * K] and their class labels int64 [P/world * K]."""
        rng = batch_rng(self.seed, iteration)
        chosen = rng.choice(len(self.subject_ids), self.subjects_per_batch, replace=False)
        picks = []
        for subject in chosen:
            pool = self.sequences_of[subject]
            k = self.sequences_per_subject
            picks.append(rng.choice(pool, k, replace=len(pool) < k))
        mine = slice(self.rank, None, self.world)
        indices = np.concatenate(picks[mine])
        labels = np.repeat(chosen[mine], self.sequences_per_subject)
        return indices, labels


def frame_windows(
    cache: SilhouetteCache,
    sequences: np.ndarray,
    frames: int,
    ordered: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """``frames`` frames from each sequence: uint8 [n, frames, 64, 44].

    ordered: a run of consecutive frames from a random start (a sequence shorter than ``frames``
             is repeated from its start, in order); otherwise frames drawn at random.
    """
    lengths = cache.lengths[sequences]  # [n]
    if ordered:
        starts = rng.integers(0, np.maximum(lengths - frames, 0) + 1)  # [n]
        offsets = (starts[:, None] + np.arange(frames)[None]) % lengths[:, None]  # [n, frames]
    else:
        offsets = np.floor(rng.random((len(sequences), frames)) * lengths[:, None]).astype(np.int64)
    return cache.frames[cache.starts[sequences][:, None] + offsets]
