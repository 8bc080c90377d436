"""``gaitlab calibrate``: new thresholds for an exported model, measured on other subjects.

A threshold keeps its false accept rate only on people like those it was measured on. Someone
deploying a model on their own population re-measures it there: this embeds every sequence of
the given subjects (a pkl tree in the CASIA-B layout, e.g. made by ``gaitlab data pretreat``)
with the model itself, calibrates over the service's pairs and searches (``training.calibration``:
per-pair thresholds and identification curves) and writes the model again with them and the
calibration record in its card. The weights, and so
the model's version, do not change: a gallery embedded with it stays valid. Subjects the model
trained on are refused (their impostor scores are lower than a stranger's).
"""

from __future__ import annotations

import logging
from pathlib import Path

from models.card import DECISION_FAR, ModelCard
from models.engine import EmbeddingEngine
from training.calibration import calibrate
from training.data.cache import SilhouetteCache
from training.data.subjects import parse_subjects
from training.embedding import embed_cache_onnx
from training.evaluation.open_set import DEFAULT_FARS
from training.export import ExportError, write_with_card

log = logging.getLogger(__name__)


def recalibrate(
    model_path: Path,
    data_root: Path,
    subjects: str,
    out: Path | None = None,
    fars: tuple[float, ...] = DEFAULT_FARS,
    progress: bool = True,
    other_people: bool = False,
) -> ModelCard:
    """Calibrate ``model_path`` on ``subjects`` under ``data_root``; write it to ``out`` (default:
    in place) with the new card, and return the card. The service's decision rate
    (:data:`~models.card.DECISION_FAR`) is always among ``fars``: without its threshold every
    request would have to bring one. Subjects whose IDs the model trained on are refused unless
    ``other_people`` says they are other people (another dataset reusing the IDs)."""
    fars = tuple(sorted({DECISION_FAR, *fars}, reverse=True))
    engine = EmbeddingEngine(model_path, device="cpu", warmup=False)
    if engine.card is None:
        raise ExportError(f"{model_path} has no model card: export it with gaitlab export")
    chosen = parse_subjects(subjects)
    if not other_people:
        _refuse_training_subjects(engine.card, chosen)
    cache = SilhouetteCache.load(data_root, chosen, progress=progress)
    if len(cache) == 0:
        raise ExportError(f"no sequences for subjects {subjects} under {data_root}")
    feats = embed_cache_onnx(engine, cache, progress=progress)
    found = calibrate(feats, cache.subjects, cache.conditions, cache.views, subjects, fars)
    card = engine.card.model_copy(
        update={
            "thresholds": found.thresholds,
            "calibration": found.record,
            "identification": found.identification,
        }
    )
    write_with_card(model_path, out or model_path, card)
    return card


def _refuse_training_subjects(card: ModelCard, chosen: list[str]) -> None:
    try:
        trained_on = set(parse_subjects(card.training.subjects))
    except ValueError:  # not a CASIA-B subject range: nothing to compare with
        log.warning(
            "cannot tell whether the calibration subjects were trained on: the card names the "
            "training subjects as %r",
            card.training.subjects,
        )
        return
    if seen := sorted(trained_on & set(chosen)):
        raise ExportError(
            f"{len(seen)} of the calibration subjects (e.g. {seen[0]}) are ones the model "
            f"trained on ({card.training.subjects}): their scores would flatter it (other "
            "people with the same IDs: --other-people)"
        )
