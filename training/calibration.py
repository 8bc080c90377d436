"""Open-set decision thresholds for a model card, from verification pairs (numpy).

The pairs are the service's: probe sequences of every condition (nm-05/06, bg-01/02, cl-01/02)
against gallery sequences (nm-01–04) seen from another view; one threshold serves all conditions.
The score is ``models.scoring.similarity`` (mean part cosine), the service's score. The
embeddings must come from the weights that will carry the thresholds, on subjects those weights
never trained on: thresholds measured on other weights, or on training subjects, do not keep
their false accept rate (see ``training.evaluation.open_set`` for the definitions).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.card import Calibration, Threshold
from training.evaluation.open_set import (
    ALL,
    DEFAULT_FARS,
    Pairs,
    pair_scores,
    verify_pairs,
)


def thresholds_of(pairs: Pairs, fars: Sequence[float] = DEFAULT_FARS) -> list[Threshold]:
    """One threshold per false accept rate in ``fars`` (each in (0, 1)), found on all pairs,
    with how far its rates could move on other subjects (a bootstrap over the subjects)."""
    if not all(0.0 < far < 1.0 for far in fars):
        raise ValueError(f"false accept rates must lie in (0, 1), got {list(fars)}")
    verification = verify_pairs(pairs, fars)
    sets = [name for name in verification.pairs if name != ALL]
    thresholds = []
    for point in verification.at_far:
        # verify_pairs resampled the subjects at every threshold (none: too few to say)
        spread = point.spread or {"far": None, "tar": None}
        thresholds.append(
            Threshold(
                far=point.target,
                score=point.threshold,
                measured_far=point.false_rate[ALL],
                tar=point.true_rate[ALL],
                far_per_condition={name: point.false_rate[name] for name in sets},
                tar_per_condition={name: point.true_rate[name] for name in sets},
                far_interval=spread["far"],
                tar_interval=spread["tar"],
            )
        )
    return thresholds


def calibrate(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
    subjects_spec: str,
    fars: Sequence[float] = DEFAULT_FARS,
) -> tuple[list[Threshold], Calibration]:
    """Thresholds from embeddings [n, c, p] of unseen subjects, and the record of how.

    ``subjects_spec`` names the subjects for the card, e.g. ``"051-074"``.
    """
    pairs = pair_scores(feats, subjects, conditions, views, cross_view=True)
    record = Calibration(
        subjects=subjects_spec,
        subject_count=pairs.subjects,
        genuine_pairs=len(pairs.genuine),
        impostor_pairs=len(pairs.impostor),
    )
    return thresholds_of(pairs, fars), record
