"""Grouping clips of different lengths into equal-length batches, so none is padded or cut."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def equal_length_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Indices into ``lengths``, grouped by equal length, at most ``batch_size`` per group.

    Every index appears exactly once; groups come shortest length first.
    """
    lengths = np.asarray(lengths)
    for length in np.unique(lengths):
        same = np.flatnonzero(lengths == length)
        for first in range(0, len(same), batch_size):
            yield same[first : first + batch_size]
