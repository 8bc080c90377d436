"""Open-set decision thresholds from genuine and impostor score distributions (numpy).

Pairs are the protocol's: every probe sequence (nm-05/06, bg-01/02, cl-01/02) against every
gallery sequence (nm-01–04), all views. A pair is genuine when both are the same subject. The
score is ``models.scoring.similarity`` (mean part cosine), the service's score.
"""

from __future__ import annotations

import numpy as np

from models.card import Threshold
from models.scoring import similarity
from training.evaluation.protocol import GALLERY_CONDITIONS, PROBE_SETS

DEFAULT_FARS = (1e-2, 1e-3)


def pair_scores(
    feats: np.ndarray, subjects: np.ndarray, conditions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores, float32 [n_genuine] and [n_impostor]."""
    probe_conditions = [c for conditions_ in PROBE_SETS.values() for c in conditions_]
    probes = np.isin(conditions, probe_conditions)
    gallery = np.isin(conditions, GALLERY_CONDITIONS)
    scores = similarity(feats[probes], feats[gallery])  # [m, g]
    same = subjects[probes][:, None] == subjects[gallery][None, :]
    return scores[same], scores[~same]


def threshold_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> Threshold:
    """The lowest score threshold whose false accept rate on ``impostor`` is at most ``far``.

    A pair is accepted when its score >= the threshold.
    """
    if len(impostor) == 0 or len(genuine) == 0:
        raise ValueError("calibration needs both genuine and impostor pairs")
    ranked = np.sort(impostor)[::-1]  # highest first
    allowed = int(np.floor(far * len(ranked)))  # impostors we may accept
    score = float(np.nextafter(ranked[allowed], np.inf)) if allowed < len(ranked) else -1.0
    return Threshold(
        far=far,
        score=score,
        measured_far=float(np.mean(impostor >= score)),
        tar=float(np.mean(genuine >= score)),
    )


def calibrate(
    feats: np.ndarray, subjects: np.ndarray, conditions: np.ndarray, fars=DEFAULT_FARS
) -> tuple[list[Threshold], int, int]:
    """Thresholds at each false accept rate, and the genuine and impostor pair counts."""
    genuine, impostor = pair_scores(feats, subjects, conditions)
    return [threshold_at_far(genuine, impostor, f) for f in fars], len(genuine), len(impostor)
