"""Outputs of an evaluation: a text table, JSON, heat maps, and the embeddings behind them.

Numpy only at import; matplotlib is imported by :func:`plot_heatmaps` alone and draws on an Agg
canvas of its own (no pyplot, no global backend switch), so it works on headless machines.
Embeddings are saved as an ``.npz`` that loads with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from training.evaluation.protocol import EvaluationResult

EMBEDDING_KEYS: tuple[str, ...] = ("feats", "subjects", "conds", "views")
"""Arrays of an embeddings file: ``feats [n, c, p]`` and three ``str [n]`` label arrays."""


def _figure(value: float, width: int = 0) -> str:
    """One decimal, or ``-`` for a missing (NaN) figure."""
    return ("-" if math.isnan(value) else f"{value:.1f}").rjust(width)


def format_table(result: EvaluationResult) -> str:
    """One row per probe set: headline mean, then the figure of each probe view (percent)."""
    excluded = "excluded" if result.exclude_identical_view else "included"
    lines = [
        f"rank-1 accuracy (%), metric {result.metric}, identical views {excluded}, "
        f"gallery {result.num_gallery} sequences",
        " ".join(["set ", " mean", *(view.rjust(5) for view in result.views), " probes"]),
    ]
    for name, mean in result.mean.items():
        per_view = result.per_view[name]
        cells = [_figure(per_view[view], 5) for view in result.views]
        lines.append(
            " ".join(
                [name.ljust(4), _figure(mean, 5), *cells, str(result.num_probes[name]).rjust(7)]
            )
        )
    return "\n".join(lines)


def write_json(result: EvaluationResult, path: str | Path) -> None:
    """``result.to_dict()`` as strict JSON (missing figures are ``null``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")


def _heatmap(axes, matrix: np.ndarray, views: tuple[str, ...], title: str, cmap) -> object:
    """Draw one ``[11, 11]`` accuracy matrix (row = probe view) with its values written in."""
    image = axes.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=0.0, vmax=100.0)
    ticks = range(len(views))
    axes.set_xticks(ticks, labels=views, fontsize=8)
    axes.set_yticks(ticks, labels=views, fontsize=8)
    axes.set_xlabel("gallery view")
    axes.set_ylabel("probe view")
    axes.set_title(title, fontsize=11)
    for (row, column), value in np.ndenumerate(matrix):
        if not math.isnan(value):
            colour = "black" if value >= 60.0 else "white"
            text = f"{value:.1f}"
            axes.text(column, row, text, ha="center", va="center", fontsize=7, color=colour)
    return image


def plot_heatmaps(result: EvaluationResult, path: str | Path) -> None:
    """One PNG: a heat map per probe set side by side, colour scale 0–100 %, NaN cells grey."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(result.accuracy)
    figure = Figure(figsize=(5.6 * len(names) + 1.0, 5.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    cmap = colormaps["viridis"].with_extremes(bad="0.85")
    for ax, name in zip(axes, names, strict=True):
        title = f"{name}: mean {_figure(result.mean[name])} ({result.num_probes[name]} probes)"
        image = _heatmap(ax, result.accuracy[name], result.views, title, cmap)
    figure.colorbar(image, ax=axes, shrink=0.8, label="rank-1 accuracy (%)")
    excluded = "excluded" if result.exclude_identical_view else "included"
    headline = " / ".join(f"{name} {_figure(result.mean[name])}" for name in names)
    figure.suptitle(
        f"CASIA-B rank-1 accuracy (%), metric {result.metric}: {headline}"
        f"  (identical views {excluded})"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def _label_array(values, count: int, name: str) -> np.ndarray:
    labels = np.asarray(values).astype(str)  # fixed-width unicode: saved without pickling
    if labels.shape != (count,):
        raise ValueError(f"{name}: expected one label per embedding ({count}), got {labels.shape}")
    return labels


def save_embeddings(path: str | Path, feats: np.ndarray, subjects, conds, views) -> None:
    """Write ``feats [n, c, p]`` and the ``[n]`` subject, condition and view labels to an npz.

    The file is written at ``path`` exactly (numpy would otherwise append ``.npz``).
    """
    feats = np.asarray(feats)
    if feats.ndim != 3:
        raise ValueError(f"feats must be [n, c, p] embeddings, got shape {feats.shape}")
    labels = {
        name: _label_array(values, len(feats), name)
        for name, values in zip(EMBEDDING_KEYS[1:], (subjects, conds, views), strict=True)
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        np.savez(file, feats=feats, **labels)


def load_embeddings(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a :func:`save_embeddings` file → ``(feats [n, c, p], subjects, conds, views)``."""
    with np.load(path, allow_pickle=False) as data:
        if set(data.files) != set(EMBEDDING_KEYS):
            raise ValueError(f"{path}: expected arrays {EMBEDDING_KEYS}, found {data.files}")
        feats, subjects, conds, views = (data[key] for key in EMBEDDING_KEYS)
    return feats, subjects, conds, views


# --- open-set --------------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def _point_rows(points, names: list[str], default_label) -> list[str]:
    rows = []
    for point in points:
        label = point.label or default_label(point.target)
        cells = [_percent(point.true_rate.get(name)).rjust(7) for name in names]
        rows.append(
            f"{label[:22].ljust(22)} {point.threshold:>9.4f} "
            f"{_percent(point.false_rate['all']).rjust(7)} {' '.join(cells)}"
        )
    return rows


def format_open_set(result) -> str:
    """Verification and open-set identification of an
    :class:`~training.evaluation.open_set.OpenSetResult` as text (rates in percent)."""
    verification, identification = result.verification, result.identification
    names = list(verification.pairs)
    pairs = verification.pairs["all"]
    views = "across views" if result.cross_view else "identical views included"
    header = " ".join(["".ljust(22), "threshold".rjust(9), "{}".rjust(7)])
    header += " " + " ".join(f"{'TAR ' if n == 'all' else ''}{n}".rjust(7) for n in names)
    lines = [
        f"verification, {views}: {verification.subjects} subjects, {pairs['genuine']:,} genuine "
        f"and {pairs['impostor']:,} impostor pairs (score: mean part cosine)",
        header.format("FAR"),
        *_point_rows(verification.at_far, names, lambda t: f"at FAR {100 * t:g} %"),
        *_point_rows(verification.given, names, str),
        "TAR at each set's own threshold: "
        + "; ".join(
            f"FAR {100 * point.target:g} %: "
            + " ".join(
                f"{n} {_percent(verification.own_threshold[n][i].true_rate[n])}" for n in names
            )
            for i, point in enumerate(verification.at_far)
        ),
        "equal error rate: " + " ".join(f"{n} {_percent(verification.eer[n])}" for n in names),
        *(
            f"{point.label or f'at FAR {100 * point.target:g} %'}: on another "
            f"{verification.subjects} subjects like these, FAR {_percent(point.spread['far'][0])}–"
            f"{_percent(point.spread['far'][1])} %, TAR {_percent(point.spread['tar'][0])}–"
            f"{_percent(point.spread['tar'][1])} % (central 90 % of a bootstrap over subjects)"
            for point in [*verification.at_far, *verification.given]
            if point.spread
        ),
        "",
    ]
    id_names = list(identification.probes)
    probes = identification.probes["all"]
    header = " ".join(["".ljust(22), "threshold".rjust(9), "{}".rjust(7)])
    header += " " + " ".join(f"{'DIR ' if n == 'all' else ''}{n}".rjust(7) for n in id_names)
    lines += [
        f"open-set identification: {identification.enrolled} subjects enrolled, "
        f"{identification.impostors} held out as impostors, {identification.splits} random "
        f"splits; per split {probes['mated']:,} enrolled and {probes['non_mated']:,} impostor "
        "probes; thresholds at an FPIR are means over the splits",
        header.format("FPIR"),
        *_point_rows(identification.at_fpir, id_names, lambda t: f"at FPIR {100 * t:g} %"),
        *_point_rows(identification.given, id_names, str),
        "rank-1 without a threshold: "
        + " ".join(f"{n} {_percent(identification.rank1[n])}" for n in id_names),
    ]
    return "\n".join(lines)


def _probit_axis(axes, which: str) -> None:
    """Put the x or y axis of ``axes`` on the normal-deviate scale of a DET plot."""
    from statistics import NormalDist

    normal = NormalDist()
    forward = np.vectorize(lambda p: normal.inv_cdf(min(max(p, 1e-6), 1 - 1e-6)))
    inverse = np.vectorize(normal.cdf)
    ticks = [0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95]
    labels = [f"{100 * t:g}" for t in ticks]
    if which == "x":
        axes.set_xscale("function", functions=(forward, inverse))
        axes.set_xticks(ticks, labels=labels)
        axes.set_xlim(0.0005, 0.5)
    else:
        axes.set_yscale("function", functions=(forward, inverse))
        axes.set_yticks(ticks, labels=labels)
        axes.set_ylim(0.0005, 0.95)


def plot_open_set(result, path: str | Path) -> None:
    """One PNG: ROC (TAR against FAR), DET (false rejects against false accepts, normal-deviate
    axes) and DIR against FPIR, one line per probe set; thresholds passed in are marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    verification, identification = result.verification, result.identification
    figure = Figure(figsize=(16, 5.2), layout="constrained")
    FigureCanvasAgg(figure)
    roc, det, dir_ = figure.subplots(1, 3)
    colours = {"all": "black", "NM": "tab:green", "BG": "tab:orange", "CL": "tab:red"}
    for name, (far, tar) in verification.curve.items():
        style = {"color": colours.get(name), "lw": 2.2 if name == "all" else 1.4}
        roc.plot(far, tar, label=f"{name} (EER {_percent(verification.eer[name])} %)", **style)
        frr = [1.0 - t for t in tar]
        det.plot(far, frr, label=name, **style)
    for name, (fpir, dir_values) in identification.curve.items():
        style = {"color": colours.get(name), "lw": 2.2 if name == "all" else 1.4}
        dir_.plot(fpir, dir_values, label=name, **style)
    for point in verification.given:
        far, tar = point.false_rate["all"], point.true_rate["all"]
        roc.plot([far], [tar], "o", color="tab:blue")
        roc.annotate(
            point.label, (far, tar), textcoords="offset points", xytext=(6, -12), fontsize=8
        )
        det.plot([far], [1 - tar], "o", color="tab:blue")
    for point in identification.given:
        fpir, dir_value = point.false_rate["all"], point.true_rate["all"]
        dir_.plot([fpir], [dir_value], "o", color="tab:blue")
        dir_.annotate(
            point.label, (fpir, dir_value), textcoords="offset points", xytext=(6, -12), fontsize=8
        )
    for axes in (roc, dir_):
        axes.set_xscale("log")
        axes.set_xlim(1e-4, 1.0)
        axes.set_ylim(0.0, 1.0)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(loc="lower right", fontsize=8)
    _probit_axis(det, "x")
    _probit_axis(det, "y")
    det.grid(True, alpha=0.3)
    det.legend(loc="upper right", fontsize=8)
    pairs = verification.pairs["all"]
    roc.set(
        xlabel="false accept rate",
        ylabel="true accept rate",
        title=f"ROC: {verification.subjects} subjects, {pairs['impostor']:,} impostor pairs",
    )
    det.set(xlabel="false accept rate (%)", ylabel="false reject rate (%)", title="DET")
    dir_.set(
        xlabel="false positive identification rate",
        ylabel="detection and identification rate",
        title=f"open-set identification: {identification.enrolled} enrolled, "
        f"{identification.impostors} impostors",
    )
    views = "across views" if result.cross_view else "identical views included"
    figure.suptitle(f"Open-set evaluation, score = mean part cosine, {views}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
