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
