"""``gaitlab export``: a training checkpoint → an ONNX embedding model with its model card.

1. The net's ``embed`` is exported behind a thin wrapper that takes the contract's input as it
   is (``uint8 [batch, frames, 64, 44]``, scaled to [0, 1] inside the graph), with dynamic batch
   and frame axes.
2. Parity: ONNX Runtime and PyTorch embed the same real clips (1, 7, 30 and 120 frames; batches
   of 1 and 4); the export fails, and leaves no file, unless they agree.
3. Validation and calibration on held-out subjects (when given): the protocol's NM/BG/CL rank-1
   and open-set thresholds at 1 % and 0.1 % false accept rate.
4. The card goes into the ONNX metadata and beside the file; its version is a content hash.
5. Optionally an int8 variant (static quantisation calibrated on training clips), with its own
   measured validation figures and thresholds.
6. Both cards carry reference embeddings: synthetic clips and the fp32 model's embeddings of
   them, which every engine serving the model must reproduce (``models.proof``). The int8 variant
   must already reproduce them here, or the export fails.

``quantize_exported`` makes the int8 variant of a model exported earlier (steps 5 and 6 alone).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.card import (
    METADATA_KEY,
    OWN_MEASUREMENT,
    PROOF_BOUND,
    Calibration,
    EmbeddingContract,
    IdentificationCalibration,
    ModelCard,
    ReferenceEmbeddings,
    Threshold,
    TrainingRecord,
    ValidationResult,
    card_path,
)
from models.engine import EmbeddingEngine
from models.proof import cpu_flags, worst_agreement
from models.reference import reference_clips
from models.registry import complete_options
from training.calibration import calibrate
from training.checkpoint import load_checkpoint, model_from_state
from training.data.cache import SilhouetteCache
from training.data.subjects import parse_subjects
from training.embedding import embed_cache_onnx
from training.evaluation.protocol import GALLERY_CONDITIONS, METRICS, PROBE_SETS, evaluate
from training.quantize import SHIPPED_FORMAT, quantize_int8

PARITY_LENGTHS = (1, 7, 30, 120)
PARITY_BATCHES = (1, 4)
OPSET = 17


class ExportError(ValueError):
    """The export's inputs or result cannot be trusted (no validation data, parity failed)."""


class OnnxEmbedder(torch.nn.Module):
    """In sils: uint8 [n, s, 64, 44]. Out float32 [n, c, p] (the net's ``embed``)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, sils: torch.Tensor) -> torch.Tensor:
        return self.net.embed(sils.float() / 255.0)


@dataclass
class ParityReport:
    max_abs_diff: float
    min_cosine: float
    cases: int  # (length, batch) combinations checked
    tolerance: float
    min_cosine_required: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.min_cosine >= self.min_cosine_required


def parity_clips(cache: SilhouetteCache, rng: np.random.Generator) -> list[np.ndarray]:
    """Real batches for every (length, batch size): uint8 [b, length, 64, 44] each."""
    batches = []
    for length in PARITY_LENGTHS:
        long_enough = np.flatnonzero(cache.lengths >= length)
        if len(long_enough) == 0:
            raise ExportError(f"no validation sequence has {length} frames for the parity check")
        for batch in PARITY_BATCHES:
            picks = rng.choice(long_enough, batch, replace=len(long_enough) < batch)
            batches.append(np.stack([cache.sequence(i)[:length] for i in picks]))
    return batches


def check_parity(
    wrapper: OnnxEmbedder,
    engine: EmbeddingEngine,
    batches: list[np.ndarray],
    tolerance: float = 1e-3,
    min_cosine: float = 0.9999,
) -> ParityReport:
    worst_diff, worst_cos = 0.0, 1.0
    for clips in batches:
        with torch.no_grad():
            expected = wrapper(torch.from_numpy(clips)).numpy()
        got = engine.embed(clips)
        worst_diff = max(worst_diff, float(np.abs(got - expected).max()))
        a, b = got.reshape(len(got), -1), expected.reshape(len(expected), -1)
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
        worst_cos = min(worst_cos, float(cosine.min()))
    return ParityReport(worst_diff, worst_cos, len(batches), tolerance, min_cosine)


def _torch_export(wrapper: OnnxEmbedder, path: Path) -> None:
    example = torch.zeros(2, 8, 64, 44, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            input_names=["silhouettes"],
            output_names=["embeddings"],
            dynamic_axes={"silhouettes": {0: "batch", 1: "frames"}, "embeddings": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def content_version(net: str, model_bytes: bytes) -> str:
    """``<net>-<12 hex of the model's hash>``; a user's ``pkg.mod:Net`` reads ``pkg.mod.Net``."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", ".", net).strip(".")
    return f"{readable}-{hashlib.sha256(model_bytes).hexdigest()[:12]}"


def write_with_card(onnx_path: Path, out: Path, card: ModelCard) -> None:
    """``onnx_path`` with ``card`` in its metadata (replacing any card there) → ``out``, written
    whole or not at all, and the card beside it."""
    import onnx

    model = onnx.load(str(onnx_path))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, card.to_json()
    partial = out.with_name(out.name + ".partial")
    onnx.save(model, str(partial))
    os.replace(partial, out)
    card_path(out).write_text(card.to_json() + "\n")


@dataclass
class ExportResult:
    path: Path
    card: ModelCard
    parity: ParityReport
    int8_card: ModelCard | None = None

    @property
    def int8_path(self) -> Path:
        return int8_path(self.path)


def int8_path(path: Path) -> Path:
    """``model.onnx`` → ``model.int8.onnx``."""
    return path.with_name(f"{path.stem}.int8{path.suffix}")


def int8_version(fp32_version: str, int8_bytes: bytes) -> str:
    """``<fp32 version>-int8-<8 hex of the int8 model's hash>``: a variant quantised anew (another
    format, other calibration) is another version, so no gallery mixes the two."""
    return f"{fp32_version}-int8-{hashlib.sha256(int8_bytes).hexdigest()[:8]}"


MIN_PROOF_BOUND = 0.99
"""The loosest agreement bound a card may set: variants whose kernels saturated agreed at
0.83–0.94 with fp32 (issue 25); honest int8 noise of the shipped nets is ~0.9993–0.9996."""


def reference_of(fp32: EmbeddingEngine, bound: float = PROOF_BOUND) -> ReferenceEmbeddings:
    """The reference clips and ``fp32``'s embeddings of them, for the card; every engine serving
    the model must reach ``bound`` on each."""
    if not MIN_PROOF_BOUND <= bound <= 1:
        raise ExportError(f"the proof bound must be in [{MIN_PROOF_BOUND}, 1]; got {bound}")
    clips = reference_clips()
    return ReferenceEmbeddings.of(clips, fp32.embed_many(list(clips)), bound)


def check_int8_reference(int8: EmbeddingEngine, reference: ReferenceEmbeddings) -> float:
    """The int8 variant's worst agreement with the fp32 reference, here; ``ExportError`` below
    the bound (a variant that is wrong on the exporting CPU is wrong to ship)."""
    worst = worst_agreement(int8.embed_many, reference)
    if not worst >= reference.bound:
        raise ExportError(
            f"the int8 variant disagrees with fp32 on the reference clips on this CPU "
            f"({cpu_flags()}): worst agreement {worst:.4f}, needs {reference.bound}; nothing "
            f"written (export without --int8, or accept a looser bound, at least "
            f"{MIN_PROOF_BOUND}, with --proof-bound)"
        )
    return worst


def validate(
    feats: np.ndarray, cache: SilhouetteCache, subjects: str, source: str
) -> ValidationResult:
    """NM/BG/CL rank-1 (both distances) of ``feats`` [n, c, p], the embeddings of ``cache``."""
    subject_ids, conditions, views = cache.subjects, cache.conditions, cache.views
    rank1 = {
        metric: evaluate(feats, subject_ids, conditions, views, metric=metric).mean
        for metric in METRICS
    }
    return ValidationResult(
        subjects=subjects,
        source=source,
        rank1={m: {k: round(v, 2) for k, v in r.items()} for m, r in rank1.items()},
        subject_count=len(np.unique(subject_ids)),
        gallery_sequences=int(np.isin(conditions, GALLERY_CONDITIONS).sum()),
        probe_sequences={
            name: int(np.isin(conditions, set_conditions).sum())
            for name, set_conditions in PROBE_SETS.items()
        },
    )


@dataclass
class _Measured:
    """What goes into one variant's card from held-out subjects."""

    validation: ValidationResult
    thresholds: list[Threshold]
    calibration: Calibration | None
    identification: IdentificationCalibration | None = None


CALIBRATION_CLIPS = 64
CALIBRATION_FRAMES = 30
# What makes two checkpoints "the same recipe": the net and every option (defaults included)
# but the class count, and these config fields (all but data subjects and paths).
RECIPE_KEYS = ("sampler", "losses", "optimizer")
RECIPE_DATA_KEYS = ("frames", "ordered", "min_frames", "augment")
RECIPE_RUN_KEYS = ("iterations", "precision", "seed")


def _with_losses(config: dict) -> dict:
    """A stored config with its loss as today's ``losses`` list (configs stored before the losses
    became a list had a fixed ``loss`` section of triplet + cross-entropy)."""
    if "losses" in config or "loss" not in config:
        return config
    old = config["loss"]
    losses = [
        {"name": "triplet", "weight": old["triplet_weight"], "output": None},
        {"name": "cross_entropy", "weight": old["ce_weight"], "output": None},
    ]
    losses[0]["margin"] = old["triplet_margin"]
    losses[1]["label_smoothing"] = old["label_smoothing"]
    return {**config, "losses": losses}


def _same_recipe(a: dict, b: dict) -> list[str]:
    """Where two checkpoints' recipes differ (empty when the same)."""

    def net(state: dict) -> tuple:  # options completed with today's defaults
        options = {k: v for k, v in state["model_options"].items() if k != "num_classes"}
        return state["model_name"], complete_options(state["model_name"], options)

    differ = ["model"] if net(a) != net(b) else []
    ca, cb = _with_losses(a["config"]), _with_losses(b["config"])
    differ += [key for key in RECIPE_KEYS if ca.get(key) != cb.get(key)]
    differ += [f"data.{k}" for k in RECIPE_DATA_KEYS if ca["data"][k] != cb["data"][k]]
    differ += [f"run.{k}" for k in RECIPE_RUN_KEYS if ca["run"][k] != cb["run"][k]]
    return differ


def calibration_clips(data_root: Path, config: dict) -> list[np.ndarray]:
    """Real training clips for int8 calibration: 64 windows of 30 frames."""
    subjects = parse_subjects(config["data"]["train_subjects"])[:16]
    cache = SilhouetteCache.load(data_root, subjects, progress=False)
    picks = np.random.default_rng(0).choice(len(cache), CALIBRATION_CLIPS, replace=False)
    return [cache.sequence(i)[:CALIBRATION_FRAMES] for i in picks]


@dataclass
class _Exported:
    """One checkpoint exported to a scratch folder, parity-checked."""

    state: dict
    fp32: Path
    parity: ParityReport
    embedding_dims: tuple[int, int]  # (d, p) of the net's embeddings
    int8: Path | None = None

    def engine(self, variant: str) -> EmbeddingEngine:
        path = self.int8 if variant == "int8" else self.fp32
        return EmbeddingEngine(path, device="cpu", warmup=False)


def _export_bare(
    state: dict, scratch: Path, cache: SilhouetteCache, int8_clips: list | None
) -> _Exported:
    wrapper = OnnxEmbedder(model_from_state(state)).eval()
    scratch.mkdir(parents=True, exist_ok=True)
    fp32 = scratch / "fp32.onnx"
    _torch_export(wrapper, fp32)
    engine = EmbeddingEngine(fp32, device="cpu", warmup=False)
    parity = check_parity(wrapper, engine, parity_clips(cache, np.random.default_rng(0)))
    if not parity.passed:
        raise ExportError(
            f"{state['config']['name']}: ONNX Runtime and PyTorch disagree: max abs diff "
            f"{parity.max_abs_diff:.2e} (allowed {parity.tolerance:.0e}), min cosine "
            f"{parity.min_cosine:.6f} (required {parity.min_cosine_required}); nothing written"
        )
    with torch.no_grad():
        dims = tuple(wrapper(torch.zeros(1, 4, 64, 44, dtype=torch.uint8)).shape[1:])
    exported = _Exported(state, fp32, parity, dims)
    if int8_clips is not None:
        exported.int8 = quantize_int8(fp32, scratch / "int8.onnx", int8_clips, "silhouettes")
    return exported


def _sibling_cards(path: Path, variants: tuple[str, ...]) -> dict[str, ModelCard]:
    """The sibling's own exported cards (``X.onnx.card.json`` and ``X.int8.onnx.card.json``)."""
    fp32 = ModelCard.from_json(path.read_text())
    cards = {"fp32": fp32}
    if "int8" in variants:
        int8_card = path.with_name(path.name.replace(".onnx.card.json", ".int8.onnx.card.json"))
        if not int8_card.exists():
            raise ExportError(f"--int8 needs the sibling's int8 card too: {int8_card} is missing")
        cards["int8"] = ModelCard.from_json(int8_card.read_text())
    for card in cards.values():
        if card.validation is None or card.validation.source != OWN_MEASUREMENT:
            raise ExportError(f"{path}: the sibling's figures must be its own measurements")
    return cards


INT8_TOLERANCE = 0.5  # rank-1 points int8 may lose to fp32, per condition and distance
INT8_SUBJECTS = 24  # validation subjects the comparison needs (12 overstated CL by 17 points)


def int8_case(fp32: ValidationResult, int8: ValidationResult) -> str | None:
    """The int8 variant's case for serving by default on a CPU (``ModelCard.cpu_default``), or
    None: every rank-1 figure within :data:`INT8_TOLERANCE` of fp32's, both measured on the
    same validation of at least :data:`INT8_SUBJECTS` subjects."""
    if fp32.subjects != int8.subjects or (int8.subject_count or 0) < INT8_SUBJECTS:
        return None
    gaps = [
        abs(int8.rank1[metric][condition] - fp32.rank1[metric][condition])
        for metric in fp32.rank1
        for condition in fp32.rank1[metric]
    ]
    if max(gaps) > INT8_TOLERANCE:
        return None
    figures = "; ".join(
        f"{metric} "
        + ", ".join(f"{c} {int8.rank1[metric][c]:.1f}/{rate:.1f}" for c, rate in rates.items())
        for metric, rates in fp32.rank1.items()
    )
    return (
        f"served by default on a CPU (the service's precision=auto): on {int8.subjects} "
        f"({int8.subject_count} subjects, {int8.source}), rank-1 int8/fp32 {figures}; every gap "
        f"within {INT8_TOLERANCE} points"
    )


@dataclass
class _Plan:
    """What an export will measure, and on what, checked before any work: the checkpoint's
    state, the validation subjects and where their figures come from (``validator``: the state
    of the model that is validated: this one, or a sibling's), whether this model's own weights
    can be calibrated on them, and a sibling's own cards to take figures from."""

    state: dict
    data_root: Path
    subjects: str
    validator: dict
    calibrated: bool
    sibling: str | None = None  # how the card names a sibling's figures
    sibling_cards: dict[str, ModelCard] | None = None

    @property
    def config(self) -> dict:
        return self.state["config"]


def _plan(
    checkpoint: Path,
    data_root: Path | None,
    subjects: str | None,
    validation_from: Path | None,
    variants: tuple[str, ...],
) -> _Plan:
    """The export's plan (:class:`_Plan`), or ``ExportError`` saying what cannot be trusted."""
    state = load_checkpoint(checkpoint)
    sibling_cards = None
    if validation_from and validation_from.name.endswith(".json"):
        sibling_cards = _sibling_cards(validation_from, variants)
        fp32 = sibling_cards["fp32"]
        validator = {
            "config": fp32.training.recipe,
            "model_name": fp32.net,
            "model_options": fp32.net_options,
            "subject_ids": parse_subjects(fp32.training.subjects),
        }
        subjects = subjects or fp32.validation.subjects
        if subjects != fp32.validation.subjects:
            raise ExportError(f"{validation_from} was validated on other subjects than {subjects}")
    else:
        validator = load_checkpoint(validation_from) if validation_from else state
    subjects = subjects or validator["config"]["data"].get("val_subjects")
    if not subjects:
        raise ExportError("no validation subjects: pass --subjects (e.g. 051-074)")
    chosen = set(parse_subjects(subjects))
    if overlap := chosen & set(validator["subject_ids"]):
        raise ExportError(
            f"validation subjects {subjects} include {len(overlap)} the validating model was "
            f"trained on (e.g. {sorted(overlap)[0]}): its figures and thresholds would flatter "
            "it; hold subjects out, or pass --validation-from with a model that did"
        )
    if validation_from and (differ := _same_recipe(state, validator)):
        raise ExportError(
            f"{validation_from} was not trained with the same recipe ({', '.join(differ)} "
            "differ): its figures would not describe this model"
        )
    sibling = None
    if validation_from:
        sibling = (
            f"sibling {validation_from.name}: the same recipe trained on "
            f"{validator['config']['data']['train_subjects']}, never shown {subjects}"
        )
    return _Plan(
        state,
        Path(data_root or state["config"]["data"]["root"]),
        subjects,
        validator,
        calibrated=not chosen & set(state["subject_ids"]),
        sibling=sibling,
        sibling_cards=sibling_cards,
    )


def _measure_variant(
    plan: _Plan,
    variant: str,
    main: _Exported,
    validating: _Exported | None,
    cache: SilhouetteCache,
    progress: bool,
) -> _Measured:
    """One variant's validation figures (its own, a sibling's measured here, or a sibling's
    cards') and, where its own weights never saw the subjects, its thresholds and curves."""
    own = None
    if plan.calibrated:
        own = embed_cache_onnx(main.engine(variant), cache, progress=progress, label=variant)
    if plan.sibling_cards:
        validation = plan.sibling_cards[variant].validation.model_copy(
            update={"source": plan.sibling}
        )
    elif validating:
        feats = embed_cache_onnx(
            validating.engine(variant), cache, progress=progress, label=f"sibling {variant}"
        )
        validation = validate(feats, cache, plan.subjects, plan.sibling)
    else:
        validation = validate(own, cache, plan.subjects, OWN_MEASUREMENT)
    if own is None:
        return _Measured(validation, [], None)
    found = calibrate(own, cache.subjects, cache.conditions, cache.views, plan.subjects)
    return _Measured(validation, found.thresholds, found.record, found.identification)


def _card(
    plan: _Plan,
    variant: str,
    version: str,
    main: _Exported,
    measured: _Measured,
    reference: ReferenceEmbeddings,
    name: str | None,
) -> ModelCard:
    config = plan.config
    return ModelCard(
        name=name or config["name"],
        version=version,
        variant=variant,
        net=plan.state["model_name"],
        net_options=json.loads(json.dumps(plan.state["model_options"])),  # tuples → lists
        embedding=EmbeddingContract(shape=["batch", *main.embedding_dims]),
        training=TrainingRecord(
            subjects=config["data"]["train_subjects"],
            config_name=config["name"],
            iterations=plan.state["iteration"],
            wall_time_s=round(plan.state["elapsed_s"], 1),
            recipe=config,
        ),
        validation=measured.validation,
        thresholds=measured.thresholds,
        calibration=measured.calibration,
        identification=measured.identification,
        reference=reference,
    )


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    data_root: Path | None = None,
    subjects: str | None = None,
    name: str | None = None,
    int8: bool = False,
    validation_from: Path | None = None,
    progress: bool = True,
    proof_bound: float = PROOF_BOUND,
) -> ExportResult:
    """Export, check parity, validate and calibrate on ``subjects``, write the model and card.

    ``data_root`` and ``subjects`` default to the checkpoint's ``data.root`` and
    ``data.val_subjects``; validation subjects the model was trained on are refused, and without
    any the export fails, since a model without a threshold cannot make open-set decisions.

    ``validation_from``: a sibling trained with the same recipe on fewer subjects (a model
    trained on all of 001–074 has no held-out subjects of its own), as a checkpoint (measured
    here) or as the card of its own export (``….onnx.card.json``, figures taken as they are).
    Its rank-1 figures, from subjects it never saw, go into the card, which says so. Its
    thresholds do not: a threshold keeps its false accept rate only on the weights it was
    measured on, so the card's thresholds always come from this model's own weights on
    ``subjects`` it never trained on, and a model trained on all of them gets none (the service
    then needs a threshold with every request).

    ``int8``: also write the int8 variant (``FILE.int8.onnx``), validated on its own; it must
    reproduce the fp32 reference embeddings to ``proof_bound`` here, or nothing is written.
    """
    variants = ("fp32", "int8") if int8 else ("fp32",)
    plan = _plan(checkpoint, data_root, subjects, validation_from, variants)
    cache = SilhouetteCache.load(plan.data_root, parse_subjects(plan.subjects), progress=progress)
    if len(cache) == 0:
        raise ExportError(f"no sequences for subjects {plan.subjects} under {plan.data_root}")
    int8_clips = calibration_clips(plan.data_root, plan.config) if int8 else None

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        main = _export_bare(plan.state, Path(scratch) / "main", cache, int8_clips)
        reference = reference_of(main.engine("fp32"), proof_bound)
        if int8:
            check_int8_reference(main.engine("int8"), reference)
        validating = None
        if validation_from and not plan.sibling_cards:
            validating = _export_bare(plan.validator, Path(scratch) / "sib", cache, int8_clips)
        version = content_version(plan.state["model_name"], main.fp32.read_bytes())
        cards = {}
        for variant in variants:
            measured = _measure_variant(plan, variant, main, validating, cache, progress)
            own_version = version
            if variant == "int8":
                own_version = int8_version(version, main.int8.read_bytes())
            cards[variant] = _card(plan, variant, own_version, main, measured, reference, name)
        write_with_card(main.fp32, out, cards["fp32"])
        if int8:
            cards["int8"] = cards["int8"].model_copy(
                update={
                    "cpu_default": int8_case(cards["fp32"].validation, cards["int8"].validation),
                    "quantization": SHIPPED_FORMAT.description,
                    "quantized_from": version,
                }
            )
            write_with_card(main.int8, int8_path(out), cards["int8"])
    return ExportResult(out, cards["fp32"], main.parity, cards.get("int8"))


def _measure_own(
    engine: EmbeddingEngine, cache: SilhouetteCache, subjects: str, progress: bool, label: str
) -> _Measured:
    """Validation figures and thresholds of ``engine`` on held-out ``cache`` (its own weights)."""
    feats = embed_cache_onnx(engine, cache, progress=progress, label=label)
    found = calibrate(feats, cache.subjects, cache.conditions, cache.views, subjects)
    validation = validate(feats, cache, subjects, OWN_MEASUREMENT)
    return _Measured(validation, found.thresholds, found.record, found.identification)


def quantize_exported(
    model: Path,
    data_root: Path,
    subjects: str | None = None,
    progress: bool = True,
    proof_bound: float = PROOF_BOUND,
) -> tuple[ModelCard, ModelCard]:
    """The int8 variant of a model exported earlier (``X.onnx`` → ``X.int8.onnx``), quantised in
    the shipped format on clips of its training subjects, checked against the fp32 reference
    here, and validated and calibrated on its own embeddings of ``subjects`` (default: the fp32
    card's validation subjects, which must be held out of its training), as ``export --int8``
    does. The fp32 card gains reference embeddings if it had none; its weights and version do
    not change. Returns (fp32 card, int8 card)."""
    fp32 = EmbeddingEngine(model, device="cpu", warmup=False)
    card = fp32.card
    if card is None or card.variant != "fp32":
        raise ExportError(f"{model}: not an fp32 model exported with its card")
    subjects = subjects or (card.validation.subjects if card.validation else None)
    if not subjects:
        raise ExportError("no validation subjects: pass --subjects (e.g. 051-074)")
    if seen := sorted(set(parse_subjects(subjects)) & set(parse_subjects(card.training.subjects))):
        raise ExportError(
            f"{len(seen)} validation subjects (e.g. {seen[0]}) are ones {model.name} trained on: "
            "the int8 variant's figures and thresholds would flatter it"
        )
    if card.reference is None:
        card = card.model_copy(update={"reference": reference_of(fp32, proof_bound)})
        write_with_card(model, model, card)
    cache = SilhouetteCache.load(data_root, parse_subjects(subjects), progress=progress)
    if len(cache) == 0:
        raise ExportError(f"no sequences for subjects {subjects} under {data_root}")
    clips = calibration_clips(data_root, card.training.recipe)
    with tempfile.TemporaryDirectory() as scratch:
        int8_file = quantize_int8(model, Path(scratch) / "int8.onnx", clips, fp32.input_name)
        int8 = EmbeddingEngine(int8_file, device="cpu", warmup=False)
        check_int8_reference(int8, card.reference)
        own = _measure_own(fp32, cache, subjects, progress, "fp32")
        quantised = _measure_own(int8, cache, subjects, progress, "int8")
        int8_card = card.model_copy(
            update={
                "version": int8_version(card.version, int8_file.read_bytes()),
                "variant": "int8",
                "validation": quantised.validation,
                "thresholds": quantised.thresholds,
                "calibration": quantised.calibration,
                "identification": quantised.identification,
                "quantization": SHIPPED_FORMAT.description,
                "quantized_from": card.version,
                "cpu_default": int8_case(own.validation, quantised.validation),
            }
        )
        write_with_card(int8_file, int8_path(model), int8_card)
    return card, int8_card
