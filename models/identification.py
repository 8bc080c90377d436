"""Identification decisions that keep their promise whatever the gallery (numpy only).

A search compares a probe with every enrolled subject and keeps the best, so a stranger has one
chance per subject to be given a name. The promise is therefore made per *search*: the false
positive identification rate (FPIR), the share of searches by strangers that return a name.

The card carries, for a subject enrolled at ``k`` views (k = 1…11), the **stranger rate**
``r_k(s)``: the share of walks by people who are not the subject whose best score against the
subject's samples reaches ``s`` (measured on held-out subjects, every probe condition and view,
the subject's nm walks at k views; ``training.calibration``). A stranger's search of a gallery of
subjects enrolled at ``k_1 … k_N`` views names someone with a score of at least ``s`` with
chance

    FPIR(s) = 1 − Π_j (1 − r_{k_j}(s))

taking the subjects as independent chances; since a walker who resembles one subject tends to
resemble others too, the real rate is a little lower (measured: 0.64–1.13 % where this gives
1 %). The decision threshold for a promised FPIR is the lowest score where ``FPIR(s)`` is within
it, so it rises with the gallery: more subjects, or more views a subject, more chances.

Below the smallest rate measured, ``r_k`` falls exponentially (fitted to the scores beyond its
``tail_score``), which is what lets the rule reach galleries larger than any it was measured on;
the card says up to which gallery size the rule was measured.

A subject's views are the distinct ``view`` labels of its samples, and each sample without one
counts as a view of its own (more chances, a stricter threshold), up to 11.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

MAX_VIEWS = 11
"""CASIA-B's views: the curves cover subjects enrolled at 1 to 11 of them."""

UNREACHABLE = 2.0
"""The threshold of a decision no score can pass (scores are cosines, at most 1)."""

DECISION_FPIR = 0.01
"""The share of strangers' searches /identify may name, unless a request asks for another."""


class StrangerRates:
    """One stranger-rate curve, ready to evaluate. scores: float [m] ascending; rates: float [m]
    non-increasing, in (0, 1]; above ``tail_score`` (≥ scores[-1] is not required) the rate is
    ``tail_rate * exp(-(s - tail_score) / tail_scale)``."""

    def __init__(
        self,
        scores: Sequence[float],
        rates: Sequence[float],
        tail_score: float,
        tail_rate: float,
        tail_scale: float,
    ):
        self.scores = np.asarray(scores, np.float64)
        self.log_rates = np.log(np.asarray(rates, np.float64))
        if len(self.scores) < 2 or np.any(np.diff(self.scores) < 0):
            raise ValueError("a stranger-rate curve needs two or more ascending scores")
        if np.any(np.diff(self.log_rates) > 1e-12):
            raise ValueError("stranger rates must not rise with the score")
        if not (tail_rate > 0 and tail_scale > 0):
            raise ValueError("the tail needs a positive rate and scale")
        self.tail_score, self.tail_rate, self.tail_scale = tail_score, tail_rate, tail_scale

    def __call__(self, score: float | np.ndarray) -> np.ndarray:
        """The share of strangers reaching ``score`` (float64, same shape)."""
        s = np.asarray(score, np.float64)
        inside = np.exp(
            np.interp(s, self.scores, self.log_rates, left=0.0, right=self.log_rates[-1])
        )
        beyond = np.maximum(s - self.tail_score, 0.0)  # (the tail is used beyond it only)
        tail = self.tail_rate * np.exp(-beyond / self.tail_scale)
        return np.where(s > self.tail_score, np.minimum(tail, inside), inside)


def effective_views(views: Iterable[str | None]) -> int:
    """How many chances a subject's samples give a stranger: distinct known views, plus one for
    each sample without a view, at least 1 and at most :data:`MAX_VIEWS`."""
    known, unknown = set(), 0
    for view in views:
        if view is None:
            unknown += 1
        else:
            known.add(view)
    return max(1, min(MAX_VIEWS, len(known) + unknown))


class StrangerModel:
    """The stranger-rate curves of one model, by number of views (1…11)."""

    def __init__(self, curves: Mapping[int, StrangerRates]):
        missing = [k for k in range(1, MAX_VIEWS + 1) if k not in curves]
        if missing:
            raise ValueError(f"stranger-rate curves missing for {missing} views")
        self.curves = dict(curves)
        self.floor = min(float(c.scores[0]) for c in self.curves.values())

    def rate(self, score: float, views: int) -> float:
        """The share of strangers whose best score against a subject enrolled at ``views``
        views reaches ``score``."""
        return float(self.curves[min(max(views, 1), MAX_VIEWS)](score))

    def fpir(self, score: float | np.ndarray, composition: Mapping[int, int]) -> np.ndarray:
        """The chance that a stranger's search names someone with a score ≥ ``score``, in a
        gallery of ``composition[k]`` subjects enrolled at ``k`` views."""
        log_none = np.zeros(np.shape(score))
        for views, count in composition.items():
            if count:
                rate = self.curves[min(max(views, 1), MAX_VIEWS)](score)
                log_none = log_none + count * np.log1p(-np.minimum(rate, 1 - 1e-12))
        return -np.expm1(log_none)

    def threshold(self, fpir: float, composition: Mapping[int, int]) -> float:
        """The lowest score whose :meth:`fpir` is within ``fpir`` (to 1e-6 of a score);
        :data:`UNREACHABLE` when even a perfect score is not (nobody can be named)."""
        if not 0 < fpir < 1:
            raise ValueError(f"an FPIR lies in (0, 1); got {fpir}")
        low, high = self.floor, 1.0
        if self.fpir(low, composition) <= fpir:
            return low
        if self.fpir(high, composition) > fpir:
            return UNREACHABLE
        for _ in range(40):  # bisection: 2 / 2**40 of a score
            middle = (low + high) / 2
            if self.fpir(middle, composition) <= fpir:
                high = middle
            else:
                low = middle
        # as the service compares scores (models.scoring.accepts): the float32 at or above it
        limit = np.float32(high)
        if float(limit) < high:  # compared in float64 (NumPy would compare in float32)
            limit = np.nextafter(limit, np.float32(2))
        return float(limit)


def composition_of(views_per_subject: Iterable[int]) -> dict[int, int]:
    """``{views: subjects}`` from each subject's effective view count."""
    return dict(Counter(min(max(k, 1), MAX_VIEWS) for k in views_per_subject))
