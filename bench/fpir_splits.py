"""Does ``/identify``'s decision keep its promise out of sample, or did a split get lucky?

Repeats the check ``gaitlab calibrate`` makes over many random splits of the held-out subjects:
curves fitted on some of them (each fit of :data:`~training.calibration.CURVE_FITS`, an 80 %
bootstrap bound), galleries drawn from the others, the share of strangers' searches named at the
promised FPIR. The spread over splits separates a rule that is loose (mean over splits above
the promise) from one whose single check was noisy.

    python bench/fpir_splits.py [--model models/weights/gaitlab-default.onnx]
        [--data /tmp/casia-b] [--subjects 051-074] [--splits 20] [--fit empirical larger]
        [--picture fpir_splits.png] [--keep /tmp/fpir]

Prints, per curve fit, gallery size and kind, FPIR over the splits (mean, median, range) and
DIR; the picture puts the fits side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.default import DEFAULT_MODEL  # noqa: E402
from models.engine import EmbeddingEngine  # noqa: E402
from models.identification import DECISION_FPIR, StrangerModel  # noqa: E402
from training.calibration import (  # noqa: E402
    CURVE_FIT,
    CURVE_FITS,
    CURVE_LEVEL,
    check_rule,
    random_splits,
    stranger_curves,
)
from training.data.cache import SilhouetteCache  # noqa: E402
from training.data.subjects import parse_subjects  # noqa: E402
from training.embedding import embed_cache_onnx  # noqa: E402
from training.evaluation.galleries import view_scores  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--data", type=Path, default=Path("/tmp/casia-b"))
    parser.add_argument("--subjects", default="051-074")
    parser.add_argument("--splits", type=int, default=20, help="random splits")
    parser.add_argument(
        "--fitted", type=int, default=None, help="people to fit curves on (default: half)"
    )
    parser.add_argument("--level", type=float, default=CURVE_LEVEL, help="bootstrap level")
    parser.add_argument(
        "--fit", choices=sorted(CURVE_FITS), nargs="+", default=[CURVE_FIT], help="compared"
    )
    parser.add_argument("--draws", type=int, default=60, help="galleries a size and kind")
    parser.add_argument("--fpir", type=float, default=DECISION_FPIR)
    parser.add_argument("--picture", type=Path, default=None, help="PNG of FPIR per split")
    parser.add_argument(
        "--keep", type=Path, default=None, help="folder to keep the embeddings in (reruns)"
    )
    args = parser.parse_args()

    engine = EmbeddingEngine(args.model, device="cpu", warmup=False)
    kept = args.keep / f"{engine.card.version}-{args.subjects}.npz" if args.keep else None
    if kept is not None and kept.exists():
        with np.load(kept) as saved:
            labels = saved["subjects"], saved["conditions"], saved["views"]
            feats = saved["feats"]
    else:
        cache = SilhouetteCache.load(args.data, parse_subjects(args.subjects))
        started = time.perf_counter()
        feats = embed_cache_onnx(engine, cache, label=engine.card.version)
        labels = cache.subjects, cache.conditions, cache.views
        print(f"{engine.card.version}: {len(cache)} walks of {args.subjects} embedded in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            np.savez(kept, feats=feats, subjects=labels[0], conditions=labels[1], views=labels[2])
    scores = view_scores(feats, *labels)
    people = len(scores.subjects)
    fitted_people = args.fitted or people // 2
    splits = list(random_splits(people, args.splits, fitted_people, seed=1))
    print(f"{people} subjects, {len(splits)} checks ({args.splits} random splits); curves from "
          f"{fitted_people} people (bootstrap level {args.level:g}), galleries from the other "
          f"{people - fitted_people}; promise {100 * args.fpir:g} %")  # fmt: skip
    found = {fit: checks_of(scores, splits, fit, args) for fit in args.fit}
    for fit, checks in found.items():
        print(f"\n{fit}\n| gallery | FPIR mean | median | min–max | above the promise | DIR |")
        print("|---|---:|---:|---:|---:|---:|")
        for (size, kind), group in checks.items():
            fpir = np.array([c.fpir for c in group]) * 100
            above = int((fpir > 100 * args.fpir).sum())
            print(f"| {size}, {kind} | {fpir.mean():.2f} % | {np.median(fpir):.2f} % | "
                  f"{fpir.min():.2f}–{fpir.max():.2f} % | {above} of {len(fpir)} | "
                  f"{100 * np.mean([c.dir for c in group]):.1f} % |")  # fmt: skip
    if args.picture is not None:
        draw(found, args.fpir, f"{engine.card.version}, {people} subjects", args.picture)
        print(f"wrote {args.picture}")


FIT_NAMES = {
    "empirical": "curves from the scores' own tail",
    "gaussian": "curves from a normal fit",
    "larger": "the larger of the two",
}


def checks_of(scores, splits, fit: str, args) -> dict[tuple[int, str], list]:
    """(gallery size, kind) → the rule's checks, one per split, curves drawn by ``fit``."""
    found: dict[tuple[int, str], list] = {}
    for number, (fitted, measured) in enumerate(tqdm(splits, desc=fit)):
        curves = stranger_curves(scores.restricted(fitted), level=args.level, fit=fit)
        model = StrangerModel({c.views: c.rates_model() for c in curves})
        held = scores.restricted(measured)
        sizes = sorted({s for s in (5, 10, len(measured) - 1) if 1 <= s < len(measured)})
        for check in check_rule(held, model, args.fpir, sizes, args.draws, seed=number):
            found.setdefault((check.subjects, check.views), []).append(check)
    return dict(sorted(found.items(), key=lambda item: (item[0][1], item[0][0])))


def draw(found: dict[str, dict], fpir: float, title: str, path: Path) -> None:
    """FPIR over the checks, a box per gallery and fit, the promise marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fits = list(found)
    keys = list(found[fits[0]])
    width = 0.8 / len(fits)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for number, fit in enumerate(fits):
        where = np.arange(len(keys)) + (number - (len(fits) - 1) / 2) * width
        boxes = ax.boxplot(
            [[100 * c.fpir for c in found[fit][k]] for k in keys],
            positions=where,
            widths=width * 0.9,
            showmeans=True,
            patch_artist=True,
        )
        for box in boxes["boxes"]:
            box.set_facecolor(f"C{number}")
            box.set_alpha(0.5)
        label = FIT_NAMES[fit] + (" (shipped)" if fit == CURVE_FIT else "")
        ax.plot([], [], color=f"C{number}", linewidth=8, alpha=0.5, label=label)
    ax.set_xticks(range(len(keys)), [f"{s} subjects, {k}" for s, k in keys], fontsize=8)
    ax.axhline(100 * fpir, color="red", linestyle="--", label="promise")
    ax.set_ylabel("strangers' searches named (%)")
    ax.set_title(f"{title}: curves fitted on half, galleries of the other (triangle: mean)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
