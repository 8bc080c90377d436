"""``gaitlab eval``: embed a partition with a trained model and run the protocol on it.

Both distances are computed (``euc`` and ``cos``); each gets a table, a JSON section and a PNG
heat map. ``--model`` takes a training checkpoint (``.pt``, embedded by PyTorch) or an exported
model (``.onnx``, embedded by the ONNX Runtime engine, as the service does). ``--open-set`` adds
verification and open-set identification on the service's score (``open_set``), measured also
at the thresholds of an exported model's card, with a ROC/DET/DIR figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from models.card import ModelCard
from models.engine import EmbeddingEngine
from models.identification import DECISION_FPIR, StrangerModel
from models.proof import require_proof
from training.checkpoint import model_from_checkpoint
from training.data.cache import SilhouetteCache
from training.data.subjects import parse_subjects
from training.embedding import embed_cache, embed_cache_onnx
from training.evaluation.galleries import (
    GalleryResult,
    evaluate_galleries,
    format_galleries,
    plot_galleries,
    view_scores,
)
from training.evaluation.open_set import OpenSetResult, evaluate_open_set
from training.evaluation.protocol import METRICS, EvaluationResult, evaluate
from training.evaluation.report import (
    format_open_set,
    format_table,
    plot_heatmaps,
    plot_open_set,
    save_embeddings,
)


@dataclass
class EvalOutputs:
    results: dict[str, EvaluationResult]  # metric → result
    sequences: int
    open_set: OpenSetResult | None = None
    galleries: list[GalleryResult] | None = None
    promise: float | None = None  # the FPIR the galleries' decisions were set for


@dataclass
class OpenSetOptions:
    """``thresholds``: (label, score) points to measure besides the card's."""

    impostor_share: float = 0.5
    splits: int = 10
    seed: int = 0
    thresholds: tuple[tuple[str, float], ...] = ()
    stranger_model: StrangerModel | None = None  # a card's identification curves: its decision
    fpir: float = DECISION_FPIR
    card_given: bool = False  # thresholds and curves from a card given by the user

    def with_card(self, card: ModelCard) -> OpenSetOptions:
        """Measure ``card``'s decisions: its per-pair thresholds and identification curves."""
        found = card.identification
        return replace(
            self,
            thresholds=(
                *((f"card {100 * t.far:g} %", t.score) for t in card.thresholds),
                *self.thresholds,
            ),
            stranger_model=found.model() if found else None,
            fpir=found.fpir if found else self.fpir,
            card_given=True,
        )


def evaluate_checkpoint(
    model_path: Path,
    data_root: Path,
    subjects: str,
    json_path: Path | None = None,
    embeddings_path: Path | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    progress: bool = True,
    open_set: OpenSetOptions | None = None,
) -> EvalOutputs:
    """Embed ``subjects`` under ``data_root`` with the model, then :func:`evaluate_embeddings`
    (an exported model's card thresholds are measured too, with ``open_set``)."""
    engine = None
    if Path(model_path).suffix == ".onnx":
        engine = EmbeddingEngine(model_path, device="cuda" if device == "cuda" else "cpu")
        require_proof(engine)  # figures of an engine that is wrong here would mislead
    cache = SilhouetteCache.load(data_root, parse_subjects(subjects), progress=progress)
    if len(cache) == 0:
        raise ValueError(f"no sequences for subjects {subjects} under {data_root}")
    if engine is not None:
        feats = embed_cache_onnx(engine, cache, batch_size, progress=progress)
        if open_set and engine.card and not open_set.card_given:
            open_set = open_set.with_card(engine.card)
    else:
        model = model_from_checkpoint(model_path, device)
        feats = embed_cache(model, cache, torch.device(device), batch_size, progress=progress)
    labels = (cache.subjects, cache.conditions, cache.views)
    if embeddings_path:
        save_embeddings(embeddings_path, feats, *labels)
    source = {"model": str(model_path), "subjects": subjects}
    return evaluate_embeddings(feats, *labels, source, json_path, open_set)


def evaluate_embeddings(
    feats: np.ndarray,
    subjects: np.ndarray,
    conditions: np.ndarray,
    views: np.ndarray,
    source: dict,
    json_path: Path | None = None,
    open_set: OpenSetOptions | None = None,
) -> EvalOutputs:
    """The protocol with both distances (and the open-set evaluation) of embeddings [n, c, p]
    and their labels; ``source`` (what they came from) heads the JSON."""
    results = {m: evaluate(feats, subjects, conditions, views, metric=m) for m in METRICS}
    open_result = None
    galleries = None
    if open_set:
        rule = None
        if open_set.stranger_model is not None:
            model, fpir = open_set.stranger_model, open_set.fpir
            rule = lambda composition: model.threshold(fpir, composition)  # noqa: E731
        galleries = evaluate_galleries(
            view_scores(feats, subjects, conditions, views), rule, seed=open_set.seed
        )
        open_result = evaluate_open_set(
            feats,
            subjects,
            conditions,
            views,
            given=open_set.thresholds,
            impostor_share=open_set.impostor_share,
            splits=open_set.splits,
            seed=open_set.seed,
        )
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        report = {
            **source,
            "sequences": len(feats),
            **{metric: result.to_dict() for metric, result in results.items()},
        }
        if open_result:
            report["open_set"] = open_result.to_dict()
            report["open_set"]["galleries"] = [g.to_dict() for g in galleries]
            plot_open_set(open_result, json_path.with_name(f"{json_path.stem}_open_set.png"))
            plot_galleries(galleries, json_path.with_name(f"{json_path.stem}_galleries.png"))
        json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
        for metric, result in results.items():
            plot_heatmaps(result, json_path.with_name(f"{json_path.stem}_{metric}.png"))
    promise = open_set.fpir if open_set and open_set.stranger_model else None
    return EvalOutputs(results, len(feats), open_result, galleries, promise)


def print_results(outputs: EvalOutputs) -> None:
    for result in outputs.results.values():
        print(format_table(result))
        print()
    if outputs.open_set:
        print(format_open_set(outputs.open_set))
        print()
    if outputs.galleries:
        print(format_galleries(outputs.galleries, outputs.promise))
        print()
