"""Open-set decision thresholds for a model card, from verification pairs (numpy).

The pairs are the service's: probe sequences of every condition (nm-05/06, bg-01/02, cl-01/02)
against gallery sequences (nm-01–04) seen from another view; one threshold serves all conditions.
The score is ``models.scoring.similarity`` (mean part cosine), the service's score. The
embeddings must come from the weights that will carry the thresholds, on subjects those weights
never trained on: thresholds measured on other weights, or on training subjects, do not keep
their false accept rate (see ``training.evaluation.open_set`` for the definitions).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.card import (
    Calibration,
    GalleryCheck,
    IdentificationCalibration,
    StrangerCurve,
    Threshold,
)
from models.identification import DECISION_FPIR, MAX_VIEWS, StrangerModel
from models.scoring import similarity
from training.evaluation.galleries import (
    KINDS,
    StrangerScores,
    ViewScores,
    check_threshold,
    search_galleries,
    stranger_scores,
    view_scores,
)
from training.evaluation.open_set import (
    ALL,
    DEFAULT_FARS,
    Pairs,
    accepted,
    pair_scores,
    verify_pairs,
)
from training.evaluation.protocol import GALLERY_CONDITIONS, PROBE_SETS, check_labels

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Calibrated:
    """What a card's decisions come from: per-pair thresholds (verification), the record of
    their pairs, and the identification curves."""

    thresholds: list[Threshold]
    record: Calibration
    identification: IdentificationCalibration | None  # None: too few strangers to draw it


def calibrate(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
    subjects_spec: str,
    fars: Sequence[float] = DEFAULT_FARS,
) -> Calibrated:
    """Every decision of the card from embeddings [n, c, p] of subjects the weights never
    trained on: :func:`calibrate_pairs` and :func:`calibrate_identification`.

    ``subjects_spec`` names the subjects for the card, e.g. ``"051-074"``.
    """
    thresholds, record = calibrate_pairs(feats, subjects, conditions, views, subjects_spec, fars)
    try:
        identification = calibrate_identification(feats, subjects, conditions, views, subjects_spec)
    except TooFewStrangersError as error:  # the card keeps its per-pair thresholds only
        log.warning("no identification curves: %s", error)
        identification = None
    return Calibrated(thresholds, record, identification)


class TooFewStrangersError(ValueError):
    """Too few stranger walks (too few subjects or views) to draw a stranger-rate curve."""


def calibrate_pairs(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
    subjects_spec: str,
    fars: Sequence[float] = DEFAULT_FARS,
) -> tuple[list[Threshold], Calibration]:
    """Per-pair thresholds from embeddings [n, c, p] of unseen subjects, and the record of how
    (each threshold's false accept rate on same-view pairs too)."""
    pairs = pair_scores(feats, subjects, conditions, views, cross_view=True)
    record = Calibration(
        subjects=subjects_spec,
        subject_count=pairs.subjects,
        genuine_pairs=len(pairs.genuine),
        impostor_pairs=len(pairs.impostor),
    )
    same_view = same_view_impostors(feats, subjects, conditions, views)
    thresholds = [
        t.model_copy(update={"far_same_view": accepted(same_view, t.score)})
        for t in thresholds_of(pairs, fars)
    ]
    return thresholds, record


def same_view_impostors(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
) -> np.ndarray:
    """Impostor pair scores of probes against gallery walks seen from the probe's own view."""
    feats, subjects, conditions, views = check_labels(feats, subjects, conditions, views)
    probes = np.isin(conditions, [c for cs in PROBE_SETS.values() for c in cs])
    gallery = np.isin(conditions, GALLERY_CONDITIONS)
    scores = similarity(feats[probes], feats[gallery])
    same_view = views[probes][:, None] == views[gallery][None, :]
    other = subjects[probes][:, None] != subjects[gallery][None, :]
    return scores[same_view & other]


# --- identification: stranger-rate curves (models.identification) ------------------------------

TAIL_RATE = 3e-3
"""Stranger rates below this come from the exponential tail fitted beyond it. On the default
model's 24 held-out subjects the tail over-estimates the rates at 1e-4 by up to 3× (a stricter
decision, not a looser); measuring deeper (down to 30 pairs) and bounding there was stricter
still, since few people make those pairs (55 % DIR at 23 subjects against 58 %)."""
CURVE_POINTS = 30
CURVE_LEVEL = 0.8
"""The curves are upper bounds: at each score, the 80th percentile of the stranger rate over a
bootstrap of the people (strangers and enrolled alike)."""
CURVE_FIT = "larger"
"""How a curve's rates are drawn from the strangers' scores (:data:`CURVE_FITS`): the larger, at
every score, of a normal fit on the log-distance scale (:func:`gaussian_stranger_curve`) and the
scores' own tail (:func:`stranger_curve`). Almost every stranger's search that passes a decision
comes from a few pairs of people who walk alike (on 051–074, two pairs of 276 held 86 % of the
pairs' scores past the 1e-3 rate), and a curve from the scores' own tail holds them or not by
the luck of who was measured. Over 20 random halvings of the default model's 24 held-out
subjects (``bench/fpir_splits.py``: curves fitted on 12, galleries of 5–11 of the other 12,
promise 1 %), the share of strangers' searches named averaged 1.5–2.9 % with the scores' own
tail (1.1–2.4 % at a 95 % bound) and 0.6–0.8 % with the larger of the two, for 6–9 points of DIR
and the worst halving at 6.8 % instead of 16.7 %. The normal fit's average falls as more people
are fitted (8: 1.4–1.9 %, 16: 0.7–0.8 %, 19: 0.6 %, the normal fit alone at a 70 % bound); the
scores' own tail's does not (8: 2.6–4.5 %, 16: 1.7–3.2 %)."""
BOOTSTRAP_DRAWS = 300


def stranger_curve(
    found: StrangerScores, views: int, level: float = CURVE_LEVEL, seed: int = 0
) -> StrangerCurve:
    """The stranger-rate curve of subjects enrolled at ``views`` views: at a grid of scores,
    the ``level`` upper bound of the share of stranger walks reaching them (down to
    :data:`TAIL_RATE`, or 30 pairs if fewer were measured), an exponential tail beyond."""
    ranked = np.sort(found.scores.astype(np.float64))
    if len(ranked) < 100:
        raise TooFewStrangersError(
            f"{len(ranked)} stranger scores against subjects at {views} views: too few for a "
            "curve (100 or more)"
        )
    tail_rate = max(TAIL_RATE, 30 / len(ranked))
    targets = np.logspace(np.log10(0.5), np.log10(tail_rate), CURVE_POINTS)
    grid = np.unique(np.quantile(ranked, 1 - targets))  # ascending scores
    rates = _upper_rates(found, grid, level, seed)
    tail_score = float(grid[-1])
    beyond = ranked[ranked > tail_score] - tail_score
    return StrangerCurve(
        views=views,
        scores=[float(s) for s in grid],
        rates=[float(r) for r in rates],
        tail_score=tail_score,
        tail_rate=float(rates[-1]),
        tail_scale=float(max(beyond.mean() if len(beyond) else 0.0, 1e-4)),
        pairs=len(ranked),
    )


def _people_bootstrap(found: StrangerScores, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A bootstrap of the people: weights float64 [draws, n] (how often each person was drawn),
    and each score's cell int [m] in the [n, n] (stranger, subject) pair matrix."""
    n = found.people
    weights = (
        np.random.default_rng(seed)
        .multinomial(n, np.full(n, 1 / n), size=BOOTSTRAP_DRAWS)
        .astype(np.float64)
    )
    return weights, found.stranger * n + found.subject


def _drawn_sums(weights: np.ndarray, cell: np.ndarray, values: np.ndarray | None) -> np.ndarray:
    """For each draw, the sum of ``values`` (None: 1 a score) over the pairs, a pair counted
    as often as both its people were drawn: float64 [draws]."""
    n = weights.shape[1]
    per_pair = np.bincount(cell, weights=values, minlength=n * n).reshape(n, n)
    return np.einsum("bi,ij,bj->b", weights, per_pair, weights)


def _upper_rates(found: StrangerScores, grid: np.ndarray, level: float, seed: int) -> np.ndarray:
    """At each score of ``grid``, the ``level`` quantile over bootstraps of the people of the
    share of pairs at or above it (a pair counts as often as both its people were drawn);
    made non-increasing and kept above 0."""
    weights, cell = _people_bootstrap(found, seed)
    totals = _drawn_sums(weights, cell, None)
    usable = totals > 0
    rates = []
    for score in grid:
        hits = _drawn_sums(weights, cell, (found.scores >= score).astype(np.float64))
        rates.append(np.quantile(hits[usable] / totals[usable], level))
    upper = np.maximum.accumulate(np.asarray(rates)[::-1])[::-1]  # non-increasing
    return np.maximum(upper, 0.5 / len(found.scores))


def gaussian_stranger_curve(
    found: StrangerScores, views: int, level: float = CURVE_LEVEL, seed: int = 0
) -> StrangerCurve:
    """The stranger-rate curve of subjects enrolled at ``views`` views from a normal fit of the
    strangers' scores on a log-distance scale, ``z = -log(1 - s)``: at each score the ``level``
    quantile over a bootstrap of the people of the fitted rate. The tail comes from the body of
    the distribution (its mean and spread), not from the few most alike pairs the people at hand
    happen to hold."""
    if len(found.scores) < 100:
        raise TooFewStrangersError(
            f"{len(found.scores)} stranger scores against subjects at {views} views: too few "
            "for a curve (100 or more)"
        )
    from scipy.special import ndtr
    from scipy.stats import norm

    z = -np.log1p(-np.minimum(found.scores.astype(np.float64), 1 - 1e-7))
    weights, cell = _people_bootstrap(found, seed)
    total = _drawn_sums(weights, cell, None)
    usable = total > 0
    mean = _drawn_sums(weights, cell, z)[usable] / total[usable]
    mean_square = _drawn_sums(weights, cell, z * z)[usable] / total[usable]
    spread = np.sqrt(np.maximum(mean_square - mean**2, 1e-12))
    centre, scale = z.mean(), z.std()
    targets = np.logspace(np.log10(0.5), -7, CURVE_POINTS)
    grid_z = centre + scale * norm.isf(targets)
    rates = np.quantile(ndtr(-(grid_z[:, None] - mean[None]) / spread[None]), level, axis=1)
    rates = np.maximum(np.maximum.accumulate(rates[::-1])[::-1], 1e-12)
    grid = -np.expm1(-grid_z)
    falling = np.flatnonzero(rates > 1e-11)  # the slope of the last points above the floor
    last = falling[-1] if len(falling) >= 2 else len(rates) - 1
    drop = np.log(rates[last - 1] / rates[last])
    tail_scale = float((grid[last] - grid[last - 1]) / drop) if drop > 0 else 1e-4
    return StrangerCurve(
        views=views,
        scores=[float(s) for s in grid],
        rates=[float(r) for r in rates],
        tail_score=float(grid[-1]),
        tail_rate=float(rates[-1]),
        tail_scale=max(tail_scale, 1e-6),
        pairs=len(found.scores),
    )


def larger_curve(curves: Sequence[StrangerCurve]) -> StrangerCurve:
    """At every score the largest of the curves' rates (on the union of their grids, from the
    highest first score: below its grid a curve says 1); beyond it, the slowest-falling tail
    from the largest last rate, an upper bound of every curve's tail."""
    grid = np.unique(np.concatenate([c.scores for c in curves]))
    grid = grid[grid >= max(c.scores[0] for c in curves)]  # below a curve's grid it says 1
    rates = np.max([c.rates_model()(grid) for c in curves], axis=0)
    rates = np.maximum.accumulate(rates[::-1])[::-1]
    return StrangerCurve(
        views=curves[0].views,
        scores=grid.tolist(),
        rates=rates.tolist(),
        tail_score=float(grid[-1]),
        tail_rate=float(rates[-1]),
        tail_scale=float(max(c.tail_scale for c in curves)),
        pairs=curves[0].pairs,
    )


def careful_stranger_curve(
    found: StrangerScores, views: int, level: float = CURVE_LEVEL, seed: int = 0
) -> StrangerCurve:
    """The larger of :func:`stranger_curve` and :func:`gaussian_stranger_curve` at every score:
    the normal fit where the scores' own tail is thin for want of people, the scores' own tail
    where the normal shape is wrong for them."""
    return larger_curve(
        [
            stranger_curve(found, views, level, seed),
            gaussian_stranger_curve(found, views, level, seed),
        ]
    )


CURVE_FITS = {
    "empirical": stranger_curve,
    "gaussian": gaussian_stranger_curve,
    "larger": careful_stranger_curve,
}


def stranger_curves(
    scores: ViewScores, seed: int = 0, level: float = CURVE_LEVEL, fit: str = CURVE_FIT
) -> list[StrangerCurve]:
    """One curve per number of views, 1 to 11, drawn as ``fit`` says (:data:`CURVE_FITS`)."""
    curve = CURVE_FITS[fit]
    return [
        curve(stranger_scores(scores, views, seed=seed), views, level, seed)
        for views in range(1, MAX_VIEWS + 1)
    ]


def check_rule(
    scores: ViewScores,
    model: StrangerModel,
    fpir: float,
    sizes: Sequence[int],
    draws: int = 60,
    seed: int = 0,
) -> list[GalleryCheck]:
    """The decision at ``fpir`` (thresholds from ``model`` for each gallery) measured on
    galleries of ``sizes`` subjects of ``scores``, all-view and one-view."""
    checks = []
    for size in sizes:
        for kind in KINDS:
            searches = search_galleries(scores, size, kind, draws, seed)
            threshold = model.threshold(fpir, searches.composition)
            checks.append(check_threshold(searches, threshold))
    return checks


MIN_CHECKED_SUBJECTS = 8
"""Fewer held-out subjects than this get curves but no checks (halves of 3 hold no gallery)."""
CHECK_HALVINGS = 10
"""Random halvings of the held-out subjects the rule is checked on, each both ways: one
halving's two checks ranged from 0 % to 12 % of strangers named on the same model."""


def random_splits(people: int, splits: int, fitted: int | None = None, seed: int = 0):
    """``splits`` random splits of ``people`` into ``fitted`` (default: half, rounded down) to
    fit curves on and the rest to measure on, yielded as (fitted, measured) index arrays; a
    halving (an odd count's too: 12 and 13 of 25) is also yielded the other way round."""
    fitted = people // 2 if fitted is None else fitted
    rng = np.random.default_rng(seed)
    for _ in range(splits):
        order = rng.permutation(people)
        first, second = np.sort(order[:fitted]), np.sort(order[fitted:])
        yield first, second
        if abs(people - 2 * fitted) <= 1:
            yield second, first


def calibrate_identification(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
    subjects_spec: str,
    fpir: float = DECISION_FPIR,
    seed: int = 0,
) -> IdentificationCalibration:
    """Stranger-rate curves from embeddings [n, c, p] of subjects the weights never trained on,
    and the decision checked the honest way: curves fitted on half of the subjects decide on
    galleries of the other half (5 and 10 subjects, and all of that half but one), over
    :data:`CHECK_HALVINGS` random halvings, each both ways. The card's curves are fitted on
    all of them."""
    scores = view_scores(feats, subjects, conditions, views)
    people = len(scores.subjects)
    checks: list[GalleryCheck] = []
    halvings = random_splits(people, CHECK_HALVINGS, seed=seed)
    for number, (fitted, measured) in enumerate(halvings if people >= MIN_CHECKED_SUBJECTS else ()):
        model = _model_of(stranger_curves(scores.restricted(fitted), seed))
        held = scores.restricted(measured)
        sizes = sorted({s for s in (5, 10, len(measured) - 1) if 1 <= s < len(measured)})
        checks += check_rule(held, model, fpir, sizes, seed=seed + number)
    pairs = pair_scores(feats, subjects, conditions, views, cross_view=False)
    per_pair = StrangerScores(
        pairs.impostor, pairs.impostor_subjects[:, 0], pairs.impostor_subjects[:, 1], people
    )
    return IdentificationCalibration(
        level=CURVE_LEVEL,
        subjects=subjects_spec,
        subject_count=people,
        curves=stranger_curves(scores, seed),
        fit=CURVE_FIT,
        pair_curve=stranger_curve(per_pair, 1, seed=seed),
        fpir=fpir,
        measured_up_to=max((c.subjects for c in checks), default=0),
        checks=_pooled(checks),
    )


def _model_of(curves: list[StrangerCurve]) -> StrangerModel:
    return StrangerModel({c.views: c.rates_model() for c in curves})


def _pooled(checks: list[GalleryCheck]) -> list[GalleryCheck]:
    """Checks of the same gallery size and kind (from every halving) as one, weighted by their
    searches; the FPIR interval is the 5th to 95th percentile of the checks' FPIRs (how much
    one population of strangers differs from another)."""
    merged: dict[tuple[int, str], list[GalleryCheck]] = {}
    for check in checks:
        merged.setdefault((check.subjects, check.views), []).append(check)
    out = []
    for (size, kind), group in sorted(merged.items()):
        weights = [c.searches for c in group]

        def mean(values: list[float], weights: list[int] = weights) -> float:
            return float(np.average(values, weights=weights))

        rates = [c.fpir for c in group]
        out.append(
            GalleryCheck(
                subjects=size,
                views=kind,
                fpir=mean([c.fpir for c in group]),
                fpir_interval=(float(np.quantile(rates, 0.05)), float(np.quantile(rates, 0.95))),
                dir=mean([c.dir for c in group]),
                dir_per_condition={
                    name: mean([c.dir_per_condition.get(name, np.nan) for c in group])
                    for name in group[0].dir_per_condition
                },
                searches=int(sum(weights)),
            )
        )
    return out
