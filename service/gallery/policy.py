"""Which search a gallery gets (no FAISS here: settings import it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MIN_TRAINING = 2_000  # fewer samples train too few lists to be worth it


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
