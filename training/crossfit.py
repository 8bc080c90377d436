"""Cross-fitting: figures and decisions for a model trained on every subject, from fold models.

A model trained on all of 001–074 has nobody left to be measured on. Fold models of the same
recipe, each trained without some subjects and measured on them with its own weights (their
exported cards), stand in for it:

- **validation**: the folds' rank-1 on their held-out subjects, their mean and spread — the
  fold models' figures, not this model's, and the card says so;
- **per-pair thresholds**: at each false accept rate, the mean of the folds' scores;
- **identification curves**: at each score, the mean of the folds' stranger rates (for each
  number of views), so the curve describes a model like these, not one fold.

Whether that is good enough is measured, not assumed: each fold's own decisions applied to each
other fold's model on that fold's subjects (i → j), and the derived decisions made from all folds
but one applied to that one (leave one out, which is the shipped model's situation: decisions
from other weights). Both go into the card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.card import (
    CrossFit,
    FoldRecord,
    GalleryCheck,
    IdentificationCalibration,
    ModelCard,
    StrangerCurve,
    Threshold,
    TransferRecord,
    ValidationResult,
)
from models.engine import EmbeddingEngine
from models.identification import MAX_VIEWS
from training.calibration import same_view_impostors
from training.data.cache import SilhouetteCache
from training.data.subjects import parse_subjects
from training.embedding import embed_cache_onnx
from training.evaluation.galleries import check_threshold, search_galleries, view_scores
from training.evaluation.open_set import accepted, pair_scores

GALLERY_SIZES = (5, 10, 24)


class CrossFitError(ValueError):
    """Folds that cannot stand in for the model (different recipes, overlapping, unmeasured)."""


@dataclass
class Fold:
    """A fold model's card and its own embeddings of its held-out subjects."""

    card: ModelCard
    feats: np.ndarray  # float32 [n, c, p]
    subjects: np.ndarray
    conditions: np.ndarray
    views: np.ndarray

    @property
    def version(self) -> str:
        return self.card.version


def load_fold(model: Path, data_root: Path, progress: bool = True) -> Fold:
    """Embed a fold model's held-out subjects (its card's calibration subjects) with itself."""
    engine = EmbeddingEngine(model, device="cpu", warmup=False)
    card = engine.card
    if card is None or card.calibration is None or card.validation is None:
        raise CrossFitError(f"{model}: a fold needs a card measured on its held-out subjects")
    cache = SilhouetteCache.load(
        data_root, parse_subjects(card.calibration.subjects), progress=progress
    )
    if len(cache) == 0:
        raise CrossFitError(f"no sequences of {card.calibration.subjects} under {data_root}")
    feats = embed_cache_onnx(engine, cache, progress=progress, label=card.version)
    return Fold(card, feats, cache.subjects, cache.conditions, cache.views)


def mean_thresholds(cards: Sequence[ModelCard]) -> dict[float, float]:
    """FAR → the mean of the cards' scores at it (FARs every card has)."""
    fars = set.intersection(*({t.far for t in c.thresholds} for c in cards))
    return {far: float(np.mean([c.threshold_at(far).score for c in cards])) for far in sorted(fars)}


def mean_curve(curves: Sequence[StrangerCurve], views: int) -> StrangerCurve:
    """The curves' stranger rates averaged at every score of their grids; beyond the highest
    grid score, an exponential tail through the mean rate there, with the mean of their scales."""
    grid = np.unique(np.concatenate([c.scores for c in curves]))
    mean = np.mean([c.rates_model()(grid) for c in curves], axis=0)
    mean = np.maximum.accumulate(mean[::-1])[::-1]  # non-increasing, as each is
    return StrangerCurve(
        views=views,
        scores=grid.tolist(),
        rates=mean.tolist(),
        tail_score=float(grid[-1]),
        tail_rate=float(mean[-1]),
        tail_scale=float(np.mean([c.tail_scale for c in curves])),
        pairs=sum(c.pairs for c in curves),
    )


def mean_identification(found: Sequence[IdentificationCalibration]) -> IdentificationCalibration:
    """The folds' identification curves (for each number of views, and per pair) as one: at
    each score the mean of their stranger rates (:func:`mean_curve`)."""
    curves = [
        mean_curve([next(c for c in f.curves if c.views == views) for f in found], views)
        for views in range(1, MAX_VIEWS + 1)
    ]
    pair_curves = [f.pair_curve for f in found if f.pair_curve is not None]
    return IdentificationCalibration(
        source="cross-fitted: the mean of fold models' curves, each on its held-out subjects",
        subjects=", ".join(f.subjects for f in found),
        subject_count=sum(f.subject_count for f in found),
        curves=curves,
        level=float(np.mean([f.level for f in found])),
        fit="+".join(sorted({f.fit for f in found})),
        pair_curve=mean_curve(pair_curves, 1) if len(pair_curves) == len(found) else None,
        fpir=found[0].fpir,
        measured_up_to=max(f.measured_up_to for f in found),
        checks=[],
    )


def measure_transfer(
    thresholds: dict[float, float],
    identification: IdentificationCalibration | None,
    fold: Fold,
    derived_from: list[str],
    sizes: Sequence[int] = GALLERY_SIZES,
    draws: int = 60,
) -> TransferRecord:
    """Decisions made elsewhere (``thresholds``: FAR → score; identification curves), on
    ``fold``'s model and held-out subjects."""
    labels = (fold.subjects, fold.conditions, fold.views)
    pairs = pair_scores(fold.feats, *labels, cross_view=True)
    same = same_view_impostors(fold.feats, *labels)
    galleries: list[GalleryCheck] = []
    if identification is not None:
        model = identification.model()
        scores = view_scores(fold.feats, *labels)
        people = len(scores.subjects)
        for size in sorted({s for s in (*sizes, people - 1) if 1 <= s < people}):
            for kind in ("all", "one"):
                searches = search_galleries(scores, size, kind, draws)
                limit = model.threshold(identification.fpir, searches.composition)
                galleries.append(check_threshold(searches, limit))
    return TransferRecord(
        derived_from=derived_from,
        measured_on=fold.version,
        far={str(far): accepted(pairs.impostor, score) for far, score in thresholds.items()},
        far_same_view={str(far): accepted(same, score) for far, score in thresholds.items()},
        tar={str(far): accepted(pairs.genuine, score) for far, score in thresholds.items()},
        galleries=galleries,
    )


def _own_thresholds(card: ModelCard) -> dict[float, float]:
    return {t.far: t.score for t in card.thresholds}


def cross_fit(folds: Sequence[Fold]) -> CrossFit:
    """The folds' records, every pairwise transfer and every leave-one-out transfer."""
    if len(folds) < 2:
        raise CrossFitError("cross-fitting needs two folds or more")
    held = [set(parse_subjects(f.card.calibration.subjects)) for f in folds]
    for i, a in enumerate(held):
        for b in held[i + 1 :]:
            if a & b:
                raise CrossFitError(f"folds share held-out subjects (e.g. {sorted(a & b)[0]})")
    records = [
        FoldRecord(
            version=f.version,
            trained_on=f.card.training.subjects,
            held_out=f.card.calibration.subjects,
            subject_count=f.card.calibration.subject_count,
            rank1=f.card.validation.rank1,
            thresholds={str(t.far): t.score for t in f.card.thresholds},
            identification=f.card.identification,
        )
        for f in folds
    ]
    pairwise = [
        measure_transfer(
            _own_thresholds(a.card), a.card.identification, b, derived_from=[a.version]
        )
        for a in folds
        for b in folds
        if a is not b
    ]
    leave_one_out = []
    for left in folds:
        others = [f for f in folds if f is not left]
        thresholds = mean_thresholds([f.card for f in others])
        found = [f.card.identification for f in others]
        curves = mean_identification(found) if all(found) else None
        leave_one_out.append(
            measure_transfer(thresholds, curves, left, derived_from=[f.version for f in others])
        )
    return CrossFit(folds=records, pairwise=pairwise, leave_one_out=leave_one_out)


def cross_validated(folds: Sequence[ModelCard], source: str) -> ValidationResult:
    """The folds' rank-1 figures as one validation: their mean (each fold weighs the same)."""
    metrics = folds[0].validation.rank1
    rank1 = {
        metric: {
            condition: round(
                float(np.mean([f.validation.rank1[metric][condition] for f in folds])), 2
            )
            for condition in conditions
        }
        for metric, conditions in metrics.items()
    }
    return ValidationResult(
        subjects=", ".join(f.validation.subjects for f in folds),
        source=source,
        rank1=rank1,
        subject_count=sum(f.validation.subject_count or 0 for f in folds),
    )


CROSS_VALIDATED = (
    "cross-validated: the mean of fold models of the same recipe, each on subjects it never "
    "trained on (the fold models' figures, not this model's)"
)


def card_from_folds(card: ModelCard, folds: Sequence[Fold]) -> ModelCard:
    """``card`` (a model trained on every fold's subjects) with the folds' cross-validated
    figures, thresholds and identification curves derived from them, and the record of how."""
    trained_on = set(parse_subjects(card.training.subjects))
    for fold in folds:
        if not set(parse_subjects(fold.card.calibration.subjects)) <= trained_on:
            raise CrossFitError(
                f"fold {fold.version} held out {fold.card.calibration.subjects}, which this "
                f"model did not train on ({card.training.subjects}): measure it on them instead"
            )
        if fold.card.net != card.net or fold.card.net_options.get("parts") != card.net_options.get(
            "parts"
        ):
            raise CrossFitError(f"fold {fold.version} is another net than {card.version}")
    record = cross_fit(folds)
    scores = mean_thresholds([f.card for f in folds])
    transfers = record.leave_one_out
    thresholds = []
    for far, score in scores.items():
        key = str(far)
        measured = [t.far[key] for t in transfers]
        thresholds.append(
            Threshold(
                far=far,
                score=score,
                measured_far=float(np.mean(measured)),
                tar=float(np.mean([t.tar[key] for t in transfers])),
                far_interval=(min(measured), max(measured)),
                far_same_view=float(np.mean([t.far_same_view[key] for t in transfers])),
            )
        )
    found = [f.card.identification for f in folds]
    return card.model_copy(
        update={
            "validation": cross_validated([f.card for f in folds], CROSS_VALIDATED),
            "thresholds": thresholds,
            "calibration": None,
            "identification": mean_identification(found) if all(found) else None,
            "cross_fit": record,
        }
    )


def cross_fit_model(
    model: Path, folds: Sequence[Path], data_root: Path, progress: bool = True
) -> ModelCard:
    """Write ``model``'s card (in place; weights and version unchanged) from its ``folds``:
    :func:`card_from_folds` on the folds' own embeddings of their held-out subjects."""
    from training.export import write_with_card

    card = EmbeddingEngine(model, device="cpu", warmup=False).card
    if card is None:
        raise CrossFitError(f"{model}: no model card (export it first)")
    loaded = [load_fold(fold, data_root, progress) for fold in folds]
    variants = {f.card.variant for f in loaded}
    if variants != {card.variant}:
        raise CrossFitError(
            f"{model.name} is {card.variant}; its folds must be too (got {sorted(variants)})"
        )
    updated = card_from_folds(card, loaded)
    write_with_card(model, model, updated)
    return updated
