"""Command-line front end of the training package (``gaitlab data|train|eval …``).

Only argparse at import time: each handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.card import ModelCard


def _reports_errors(handler):
    """Errors a user can fix (missing files, bad values, bad configs, a failed export) become one
    line on stderr and exit status 2; anything else keeps its traceback."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return run


def register(commands: argparse._SubParsersAction) -> None:
    """Add this package's commands to the ``gaitlab`` parser."""
    data = commands.add_parser("data", help="CASIA-B data: pretreat raw PNGs, inspect a pkl tree")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    pretreat = data_commands.add_parser(
        "pretreat",
        help="raw silhouette PNG tree → OpenGait pkl tree of aligned 64×64 frames",
        description="Align every raw mask (models.silhouette) and write one pkl per sequence. "
        "Existing outputs are kept unless --overwrite, so an interrupted run can be re-run.",
    )
    pretreat.add_argument("raw", type=Path, help="RAW/<subject>/<condition>/<view>/*.png")
    pretreat.add_argument("out", type=Path, help="output pkl tree")
    pretreat.add_argument(
        "--workers", type=int, default=None, help="processes (default: all cores)"
    )
    pretreat.add_argument("--min-frames", type=int, default=15, help="report shorter sequences")
    pretreat.add_argument("--overwrite", action="store_true", help="redo sequences already written")
    pretreat.set_defaults(run=_run_pretreat)

    stats = data_commands.add_parser(
        "stats",
        help="subjects, sequences, frames, short and missing sequences of a pkl tree",
    )
    stats.add_argument("tree", type=Path, help="pkl tree: TREE/<subject>/<condition>/<view>/*.pkl")
    stats.add_argument("--subjects", default=None, help="e.g. 001-074, LT-train (default: all)")
    stats.add_argument("--min-frames", type=int, default=15, help="report shorter sequences")
    stats.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    stats.set_defaults(run=_run_stats)

    train = commands.add_parser(
        "train",
        help="train a net from a YAML config (torchrun: python -m training.train)",
        description="Train as the config says. Several GPUs: torchrun --nproc-per-node N "
        "-m training.train --config FILE (same arguments).",
    )
    add_train_arguments(train)
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser(
        "eval",
        help="the standard CASIA-B protocol (NM/BG/CL rank-1) for a trained model",
    )
    evaluate.add_argument(
        "--model",
        type=Path,
        default=None,
        help="training checkpoint (.pt) or exported .onnx (default: the shipped default model)",
    )
    evaluate.add_argument(
        "--embeddings",
        type=Path,
        default=None,
        help="evaluate a saved .npz (from --save-embeddings) instead of embedding anew",
    )
    evaluate.add_argument("--data", type=Path, default=None, help="pkl tree (with --model)")
    evaluate.add_argument(
        "--subjects",
        default="051-074",
        help="e.g. 051-074 (24 subjects; select models on at least 24) or LT-test",
    )
    evaluate.add_argument("--json", type=Path, default=None, help="write results (+ heat map PNGs)")
    evaluate.add_argument(
        "--save-embeddings", type=Path, default=None, help="write feats/subjects/conds/views .npz"
    )
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.add_argument("--device", default="cpu", help="cpu or cuda")
    open_set = evaluate.add_argument_group(
        "open set",
        "verification (TAR at FAR, per condition) and open-set identification (DIR at FPIR, "
        "with subjects held out of the gallery as impostors) on the service's score, across "
        "views; an exported model is measured at its card's thresholds too",
    )
    open_set.add_argument("--open-set", action="store_true", help="add the open-set evaluation")
    open_set.add_argument(
        "--impostor-share",
        type=float,
        default=0.5,
        help="share of the subjects held out of the gallery (default 0.5)",
    )
    open_set.add_argument(
        "--splits", type=int, default=10, help="random enrolled/impostor splits (default 10)"
    )
    open_set.add_argument("--seed", type=int, default=0, help="seed of the splits")
    open_set.add_argument(
        "--card",
        type=Path,
        default=None,
        help="measure the decisions of this model card (FILE.onnx.card.json: its thresholds "
        "and identification curves) instead of the evaluated model's own: how a card "
        "transfers to other weights (e.g. another fold's)",
    )
    open_set.add_argument(
        "--threshold",
        type=float,
        action="append",
        default=[],
        metavar="SCORE",
        help="also measure at this score threshold (repeatable)",
    )
    evaluate.set_defaults(run=_run_eval)

    export = commands.add_parser(
        "export",
        help="checkpoint → ONNX embedding model + model card (parity-checked, calibrated)",
    )
    export.add_argument("checkpoint", type=Path, help="training checkpoint (.pt)")
    export.add_argument("--out", type=Path, required=True, help="FILE.onnx")
    export.add_argument("--data", type=Path, default=None, help="pkl tree (default: from config)")
    export.add_argument(
        "--subjects", default=None, help="held-out validation subjects (default: from config)"
    )
    export.add_argument("--name", default=None, help="model name for the card")
    export.add_argument(
        "--int8",
        action="store_true",
        help="also write the int8 variant (FILE.int8.onnx); its card names it the CPU default "
        "when it is within 0.5 rank-1 points of fp32 on 24 or more validation subjects",
    )
    export.add_argument(
        "--validation-from",
        type=Path,
        default=None,
        help="checkpoint (or exported card) of the same recipe trained without the validation "
        "subjects: its rank-1 figures go into the card, which says so (for models trained on "
        "all subjects); thresholds are never borrowed: such a model gets none",
    )
    _add_proof_bound(export)
    export.set_defaults(run=_run_export)

    quantize = commands.add_parser(
        "quantize",
        help="the int8 variant of an exported fp32 model (FILE.int8.onnx beside it), checked "
        "against fp32 here, validated and calibrated on its own embeddings",
    )
    quantize.add_argument("model", type=Path, help="exported fp32 model (.onnx with its card)")
    quantize.add_argument("--data", type=Path, required=True, help="pkl tree")
    quantize.add_argument(
        "--subjects",
        default=None,
        help="held-out validation subjects (default: those of the model's card)",
    )
    _add_proof_bound(quantize)
    quantize.set_defaults(run=_run_quantize)

    crossfit = commands.add_parser(
        "crossfit",
        help="figures and decisions for a model trained on every subject, from fold models of "
        "its recipe (each exported on its held-out subjects), with their measured transfer",
    )
    crossfit.add_argument(
        "model",
        type=Path,
        nargs="?",
        default=None,
        help="the exported model trained on every fold (its card is written in place); "
        "without it, the folds' transfers are measured and printed, nothing is written",
    )
    crossfit.add_argument(
        "--folds", type=Path, nargs="+", required=True, help="the folds' exported models"
    )
    crossfit.add_argument("--data", type=Path, required=True, help="pkl tree")
    crossfit.add_argument(
        "--json", type=Path, default=None, help="also write the cross-fit record here"
    )
    crossfit.set_defaults(run=_run_crossfit)

    recalibrate = commands.add_parser(
        "calibrate",
        help="new open-set thresholds for an exported model, measured on subjects it never "
        "trained on (your own population); weights and version unchanged",
    )
    recalibrate.add_argument("model", type=Path, help="exported model (.onnx with its card)")
    recalibrate.add_argument("--data", type=Path, required=True, help="pkl tree")
    recalibrate.add_argument("--subjects", required=True, help="e.g. 051-074")
    recalibrate.add_argument(
        "--out", type=Path, default=None, help="write here instead of over MODEL"
    )
    recalibrate.add_argument(
        "--far",
        type=float,
        action="append",
        default=None,
        help="false accept rate to calibrate at (repeatable; default 0.01 and 0.001; 0.01, the "
        "service's decision rate, is always included)",
    )
    recalibrate.add_argument(
        "--other-people",
        action="store_true",
        help="the subjects are not the people the model trained on, whatever their IDs (another "
        "dataset whose IDs reuse CASIA-B's): skip the check that refuses training subjects",
    )
    recalibrate.set_defaults(run=_run_calibrate)

    experiment = commands.add_parser(
        "experiment",
        help="a campaign of training runs from one base config, and its report",
    )
    experiment_commands = experiment.add_subparsers(
        dest="experiment_command", required=True, metavar="COMMAND"
    )
    experiment_run = experiment_commands.add_parser(
        "run",
        help="train every run of an experiment file, one after another (rerun to continue)",
        description="Runs go one after another, each in OUT/runs/NAME. A finished run is "
        "skipped, an interrupted one resumes from its checkpoint: rerun the same command to "
        "continue a campaign. The report is written at the end (and by `experiment report`).",
    )
    experiment_run.add_argument("file", type=Path, help="experiment YAML (see configs/experiments)")
    experiment_run.add_argument(
        "--out", type=Path, default=None, help="campaign directory (default: runs/<name>)"
    )
    experiment_run.add_argument("--data-root", type=Path, default=None, help="override data.root")
    experiment_run.set_defaults(run=_run_experiment)
    experiment_report = experiment_commands.add_parser(
        "report",
        help="figures, a Markdown table and report.json for a campaign (finished or running)",
    )
    experiment_report.add_argument("dir", type=Path, help="campaign directory")
    experiment_report.set_defaults(run=_run_experiment_report)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="YAML file (see configs/)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT_DIR/latest.pt")
    parser.add_argument("--data-root", type=Path, default=None, help="override data.root")
    parser.add_argument("--out-dir", type=Path, default=None, help="override run.out_dir")
    parser.add_argument("--iterations", type=int, default=None, help="override run.iterations")


@_reports_errors
def run_train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.trainer import train

    overrides: dict = {}
    if args.data_root:
        overrides.setdefault("data", {})["root"] = str(args.data_root)
    if args.out_dir:
        overrides.setdefault("run", {})["out_dir"] = str(args.out_dir)
    if args.iterations:
        overrides.setdefault("run", {})["iterations"] = args.iterations
    checkpoint = train(load_config(args.config, overrides), resume=args.resume)
    print(f"checkpoint: {checkpoint}")
    return 0


@_reports_errors
def _add_proof_bound(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--proof-bound",
        type=float,
        default=None,
        help="least agreement with the fp32 reference embeddings (mean part cosine, every "
        "reference clip) that an engine must reach to serve the model, stored in the card; "
        "at least 0.99 (default 0.999)",
    )


def _bound(args: argparse.Namespace) -> dict:
    return {} if args.proof_bound is None else {"proof_bound": args.proof_bound}


def _run_experiment(args: argparse.Namespace) -> int:
    from training.experiment.report import build_report
    from training.experiment.runner import run_experiment
    from training.experiment.spec import load_experiment

    experiment = load_experiment(args.file, data_root=args.data_root)
    out = args.out or Path("runs") / experiment.name
    run_experiment(experiment, out)
    print(f"campaign finished; report: {build_report(out)}")
    return 0


@_reports_errors
def _run_experiment_report(args: argparse.Namespace) -> int:
    from training.experiment.report import build_report

    print(f"wrote {build_report(args.dir)}")
    return 0


@_reports_errors
def _run_eval(args: argparse.Namespace) -> int:
    from models.card import ModelCard
    from models.default import default_model_path
    from training.evaluation.report import load_embeddings
    from training.evaluation.run import (
        OpenSetOptions,
        evaluate_checkpoint,
        evaluate_embeddings,
        print_results,
    )

    open_set = None
    if args.open_set:
        open_set = OpenSetOptions(
            impostor_share=args.impostor_share,
            splits=args.splits,
            seed=args.seed,
            thresholds=tuple((f"score {t:g}", t) for t in args.threshold),
        )
        if args.card:
            open_set = open_set.with_card(ModelCard.from_json(args.card.read_text()))
    elif args.threshold or args.card:
        raise ValueError("--threshold and --card measure open-set figures: add --open-set")
    if args.embeddings:
        if args.model or args.data or args.save_embeddings:
            raise ValueError("--embeddings replaces --model, --data and --save-embeddings")
        feats, subjects, conditions, views = load_embeddings(args.embeddings)
        source = {"embeddings": str(args.embeddings)}
        outputs = evaluate_embeddings(
            feats, subjects, conditions, views, source, args.json, open_set
        )
    else:
        if args.data is None:
            raise ValueError("--data is needed to embed (or evaluate saved --embeddings)")
        outputs = evaluate_checkpoint(
            args.model or default_model_path(),
            args.data,
            args.subjects,
            json_path=args.json,
            embeddings_path=args.save_embeddings,
            batch_size=args.batch_size,
            device=args.device,
            open_set=open_set,
        )
    print_results(outputs)
    if args.json:
        print(f"wrote {args.json} and its figures beside it")
    return 0


@_reports_errors
def _run_calibrate(args: argparse.Namespace) -> int:
    from training.evaluation.open_set import DEFAULT_FARS, MIN_BOOTSTRAP_SUBJECTS
    from training.recalibrate import recalibrate

    card = recalibrate(
        args.model,
        args.data,
        args.subjects,
        args.out,
        tuple(args.far or DEFAULT_FARS),
        other_people=args.other_people,
    )
    record = card.calibration
    print(
        f"wrote {args.out or args.model} ({card.version}): calibrated on {record.subjects} "
        f"({record.subject_count} subjects, {record.genuine_pairs:,} genuine and "
        f"{record.impostor_pairs:,} impostor pairs, across views)"
    )
    for t in card.thresholds:
        spread = (
            f" (90 % over subjects: {100 * t.far_interval[0]:.2f}–{100 * t.far_interval[1]:.2f} %)"
            if t.far_interval
            else f" (no interval: fewer than {MIN_BOOTSTRAP_SUBJECTS} subjects)"
        )
        same = f"; same-view pairs {100 * t.far_same_view:.2f} %" if t.far_same_view else ""
        print(
            f"  FAR {100 * t.far:g} %: score >= {t.score:.4f}, measured FAR "
            f"{100 * t.measured_far:.2f} %{spread}{same}, TAR {100 * t.tar:.1f} %"
        )
    _print_identification(card)
    return 0


def _print_identification(card: ModelCard) -> None:
    """The identification decision's thresholds by gallery and its checks."""
    found = card.identification
    if found is None:
        return
    model = found.model()
    print(
        f"  identification at FPIR {100 * found.fpir:g} % (curves: {found.fit} fit, "
        f"{100 * found.level:g} % bound): threshold by gallery (subjects)"
    )
    for size in (1, 5, 10, 24, 100, 1000):
        every = model.threshold(found.fpir, {11: size})
        one = model.threshold(found.fpir, {1: size})
        print(f"    {size:5d}: all views {every:.4f}, one view {one:.4f}")
    for check in found.checks:
        low, high = check.fpir_interval or (float("nan"), float("nan"))
        print(
            f"    measured, {check.subjects} subjects at {check.views} view(s): strangers named "
            f"{100 * check.fpir:.2f} % (halvings' 5th–95th percentile {100 * low:.2f}–"
            f"{100 * high:.2f} %), enrolled walkers named right {100 * check.dir:.1f} %"
        )


def _listing(title: str, items: list, limit: int = 20) -> None:
    print(f"{title}: {len(items)}")
    for item in items[:limit]:
        print(f"  {item}")
    if len(items) > limit:
        print(f"  … and {len(items) - limit} more")


@_reports_errors
def _run_pretreat(args: argparse.Namespace) -> int:
    from training.data.pretreat import pretreat_tree

    report = pretreat_tree(
        args.raw,
        args.out,
        workers=args.workers,
        min_frames=args.min_frames,
        overwrite=args.overwrite,
    )
    print(f"sequences written   {report.sequences_written}")
    print(f"already present     {report.sequences_existing}")
    print(f"frames read / kept  {report.frames_read} / {report.frames_kept}")
    _listing(f"short (<{args.min_frames} frames)", [f"{k}: {n}" for k, n in report.short])
    _listing("empty (no usable frame, not written)", [str(k) for k in report.empty])
    _listing("view folders without images", [str(p) for p in report.empty_folders])
    _listing("unreadable images", report.unreadable_frames)
    return 0


@_reports_errors
def _run_stats(args: argparse.Namespace) -> int:
    from training.data.casia_b import tree_stats
    from training.data.subjects import parse_subjects

    subjects = parse_subjects(args.subjects) if args.subjects else None
    stats = tree_stats(args.tree, subjects, min_frames=args.min_frames)
    mean = stats.frames / stats.sequences if stats.sequences else 0.0
    print(f"tree       {stats.root}")
    print(f"subjects   {stats.subjects}")
    print(f"sequences  {stats.sequences}")
    print(f"frames     {stats.frames} ({mean:.1f} per sequence)")
    _listing(f"short (<{args.min_frames} frames)", [f"{k}: {n}" for k, n in stats.short])
    _listing("missing", [str(k) for k in stats.missing])
    _listing("problems", [str(p) for p in stats.problems])
    if args.json:
        args.json.write_text(json.dumps(stats.to_dict(), indent=2))
        print(f"wrote {args.json}")
    return 0


@_reports_errors
def _run_quantize(args: argparse.Namespace) -> int:
    from training.export import int8_path, quantize_exported

    _, int8 = quantize_exported(args.model, args.data, args.subjects, **_bound(args))
    print(f"wrote {int8_path(args.model)} ({int8.version}): {int8.quantization}")
    _print_variant(int8)
    print(
        f"  {int8.cpu_default}"
        if int8.cpu_default
        else "  not the CPU default: a rank-1 figure is more than 0.5 points from fp32's"
    )
    return 0


@_reports_errors
def _run_crossfit(args: argparse.Namespace) -> int:
    from training.crossfit import cross_fit, cross_fit_model, load_fold

    if args.model is None:
        record = cross_fit([load_fold(fold, args.data) for fold in args.folds])
        print(f"measured {len(record.folds)} folds (no model named: nothing written)")
    else:
        card = cross_fit_model(args.model, args.folds, args.data)
        record = card.cross_fit
        print(f"wrote {args.model} ({card.version}) from {len(record.folds)} folds")
    if args.json is not None:
        args.json.write_text(record.model_dump_json(indent=2) + "\n")
    for fold in record.folds:
        figures = " ".join(f"{k} {v:.1f}" for k, v in fold.rank1["euc"].items())
        print(f"  fold {fold.version}: held out {fold.held_out}: euc {figures}")
    if args.model is not None:
        _print_variant(card)
    for name, transfers in (("i → j", record.pairwise), ("leave one out", record.leave_one_out)):
        print(f"  transfer ({name}):")
        for t in transfers:
            far = ", ".join(f"{100 * float(k):g} %: {100 * v:.2f} %" for k, v in t.far.items())
            print(f"    {'+'.join(t.derived_from)} → {t.measured_on}: FAR {far}")
            for g in t.galleries:
                print(
                    f"      {g.subjects} subjects, {g.views} view(s): strangers named "
                    f"{100 * g.fpir:.2f} %, walkers named right {100 * g.dir:.1f} %"
                )
    return 0


@_reports_errors
def _run_export(args: argparse.Namespace) -> int:
    from training.export import export_checkpoint

    result = export_checkpoint(
        args.checkpoint,
        args.out,
        data_root=args.data,
        subjects=args.subjects,
        name=args.name,
        int8=args.int8,
        validation_from=args.validation_from,
        **_bound(args),
    )
    card, parity = result.card, result.parity
    print(f"wrote {result.path} ({card.version})")
    print(
        f"parity: {parity.cases} cases, max abs diff {parity.max_abs_diff:.2e}, "
        f"min cosine {parity.min_cosine:.6f}"
    )
    for variant in filter(None, (card, result.int8_card)):
        _print_variant(variant)
    return 0


def _print_variant(variant: ModelCard) -> None:
    """A variant's version, validation, thresholds and calibration, as export prints them."""
    print(f"{variant.variant} {variant.version}")
    for metric, figures in variant.validation.rank1.items():
        line = " ".join(f"{k} {v:.1f}" for k, v in figures.items())
        print(f"  validation {variant.validation.subjects} {metric}: {line}")
    for threshold in variant.thresholds:
        print(
            f"  threshold at FAR {threshold.far:g}: score >= {threshold.score:.4f} "
            f"(TAR {100 * threshold.tar:.1f} %)"
        )
    if variant.cross_fit is not None:
        print(f"  thresholds and curves cross-fitted from {len(variant.cross_fit.folds)} folds")
    elif variant.calibration is None:
        print(
            "  no thresholds: this model trained on every validation subject, and thresholds "
            "from other weights would not keep their rate; requests must pass a threshold"
        )
    else:
        c = variant.calibration
        print(
            f"  calibrated on {c.subjects} ({c.subject_count} subjects, {c.genuine_pairs} "
            f"genuine and {c.impostor_pairs} impostor pairs, across views)"
        )
    _print_identification(variant)
