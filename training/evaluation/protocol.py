"""The standard CASIA-B rank-1 protocol ("LT" setting), numpy only.

Gallery: ``nm-01``–``nm-04`` of the evaluated subjects, all views. Probe sets: NM = ``nm-05``,
``nm-06``; BG = ``bg-01``, ``bg-02``; CL = ``cl-01``, ``cl-02``. For a probe set, a probe view
``pv`` and a gallery view ``gv``, rank-1 accuracy is the share of the set's probes seen from
``pv`` whose nearest gallery sequence *among those seen from* ``gv`` is the same subject.
Identical views are left out by default; a probe view's figure is the mean over the gallery
views, and the headline figure of a set is the mean over its probe views. All in percent.

Embeddings are ``[n, c, p]``: ``c`` channels for each of ``p`` parts. Distances are computed per
part and averaged over parts. Missing sequences are simply absent rows: a cell with no probe or
no gallery sequence is NaN and drops out of the means. Ties go to the first gallery row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from training.data.casia_b import CONDITIONS, VIEWS

GALLERY_CONDITIONS: tuple[str, ...] = ("nm-01", "nm-02", "nm-03", "nm-04")
"""Walks enrolled in the gallery, from every view."""

PROBE_SETS: dict[str, tuple[str, ...]] = {
    "NM": ("nm-05", "nm-06"),
    "BG": ("bg-01", "bg-02"),
    "CL": ("cl-01", "cl-02"),
}
"""The three probe sets: normal walking, carrying a bag, wearing a coat."""

METRICS: tuple[str, ...] = ("euc", "cos")
"""``euc``: mean per-part Euclidean distance; ``cos``: 1 − mean per-part cosine similarity."""

_NORM_EPS = 1e-12
"""Floor for a part vector's norm before cosine normalisation (zero vectors stay zero)."""

_BLOCK_ELEMENTS = 1 << 24
"""Default bound on ``parts × probes × gallery`` entries computed at once (64 MB in float32)."""


# --- distances -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """Both sides laid out for per-part matmuls.

    probe: [p, m, c]; gallery_t: [p, c, g]; gallery_sq: [p, g] (squared norms, ``euc`` only).
    """

    probe: np.ndarray
    gallery_t: np.ndarray
    gallery_sq: np.ndarray | None
    metric: str


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def _check_feats(feats: np.ndarray, name: str) -> np.ndarray:
    feats = np.asarray(feats)
    if feats.ndim != 3:
        raise ValueError(f"{name} must be [n, c, p] embeddings, got shape {feats.shape}")
    return feats


def _parts_first(feats: np.ndarray, metric: str, dtype: np.dtype) -> np.ndarray:
    """In feats: [n, c, p] → [p, n, c], each part vector L2-normalised for ``cos``."""
    parts = np.moveaxis(feats.astype(dtype, copy=False), 2, 0)
    if metric == "cos":
        norms = np.linalg.norm(parts, axis=2, keepdims=True)
        parts = parts / np.maximum(norms, _NORM_EPS)
    return np.ascontiguousarray(parts)


def _prepare(probe: np.ndarray, gallery: np.ndarray, metric: str) -> _Prepared:
    _check_metric(metric)
    probe = _check_feats(probe, "probe")
    gallery = _check_feats(gallery, "gallery")
    if probe.shape[1:] != gallery.shape[1:]:
        raise ValueError(
            f"probe [m, c, p] = {probe.shape} and gallery [g, c, p] = {gallery.shape} "
            "differ in channels or parts"
        )
    dtype = np.result_type(probe.dtype, gallery.dtype, np.float32)
    probe_parts = _parts_first(probe, metric, dtype)
    gallery_parts = _parts_first(gallery, metric, dtype)
    gallery_sq = None
    if metric == "euc":
        gallery_sq = np.einsum("pgc,pgc->pg", gallery_parts, gallery_parts)
    gallery_t = np.ascontiguousarray(gallery_parts.transpose(0, 2, 1))
    return _Prepared(probe_parts, gallery_t, gallery_sq, metric)


def _block_distance(prepared: _Prepared, rows: slice) -> np.ndarray:
    """Distances of the probes in ``rows`` to the whole gallery → [rows, g]."""
    probe = prepared.probe[:, rows]  # [p, b, c]
    dot = probe @ prepared.gallery_t  # [p, b, g]
    if prepared.metric == "cos":
        return 1.0 - dot.mean(axis=0)
    probe_sq = np.einsum("pbc,pbc->pb", probe, probe)
    squared = probe_sq[:, :, None] + prepared.gallery_sq[:, None, :] - 2.0 * dot
    return np.sqrt(np.maximum(squared, 0.0)).mean(axis=0)


def _chunk_size(chunk: int | None, parts: int, gallery: int) -> int:
    if chunk is None:
        return max(1, _BLOCK_ELEMENTS // max(1, parts * gallery))
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 probe, got {chunk}")
    return chunk


def _blocks(prepared: _Prepared, chunk: int | None) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, distances [rows, g])`` over the probes, ``chunk`` probes at a time."""
    parts, m, _ = prepared.probe.shape
    step = _chunk_size(chunk, parts, prepared.gallery_t.shape[2])
    for start in range(0, m, step):
        rows = slice(start, min(start + step, m))
        yield rows, _block_distance(prepared, rows)


def distance_matrix(
    probe: np.ndarray, gallery: np.ndarray, metric: str = "euc", chunk: int | None = None
) -> np.ndarray:
    """Probe-to-gallery distances, averaged over parts.

    In probe: [m, c, p], gallery: [g, c, p] → [m, g] (float32, or float64 for float64 input).
    ``chunk`` probes are handled at a time (by default as many as keep one block of
    ``p × chunk × g`` values near 16 M), so memory stays bounded for any ``m``.
    """
    prepared = _prepare(probe, gallery, metric)
    out = np.empty((prepared.probe.shape[1], prepared.gallery_t.shape[2]), prepared.probe.dtype)
    for rows, block in _blocks(prepared, chunk):
        out[rows] = block
    return out


def rank1_predictions(
    probe_feats: np.ndarray,
    gallery_feats: np.ndarray,
    gallery_subjects: Sequence[str] | np.ndarray,
    metric: str = "euc",
    chunk: int | None = None,
) -> np.ndarray:
    """The subject of each probe's nearest gallery sequence (first one on ties).

    In probe_feats: [m, c, p], gallery_feats: [g, c, p], gallery_subjects: [g] → [m].
    Only one chunk of distances is held at a time.
    """
    gallery_subjects = np.asarray(gallery_subjects)
    prepared = _prepare(probe_feats, gallery_feats, metric)
    size = prepared.gallery_t.shape[2]
    if gallery_subjects.shape != (size,):
        raise ValueError(f"{size} gallery embeddings but {gallery_subjects.shape} subjects")
    if size == 0:
        raise ValueError("the gallery is empty: no nearest sequence to find")
    nearest = np.empty(prepared.probe.shape[1], dtype=np.intp)
    for rows, block in _blocks(prepared, chunk):
        nearest[rows] = block.argmin(axis=1)
    return gallery_subjects[nearest]


# --- the protocol ----------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    """Rank-1 accuracies (percent) of one evaluation, per probe set ``NM``, ``BG``, ``CL``.

    ``accuracy[set]`` is ``[11, 11]``: row = probe view, column = gallery view, in ``views``
    order; NaN where excluded (the diagonal, by default) or where a cell had no probe or no
    gallery sequence. ``per_view[set][view]`` is the NaN-skipping mean of a row; ``mean[set]``
    (the headline figure) the mean of the per-view figures that exist, NaN when none does.
    """

    metric: str
    exclude_identical_view: bool
    mean: dict[str, float]
    per_view: dict[str, dict[str, float]]
    accuracy: dict[str, np.ndarray]
    num_probes: dict[str, int]
    num_gallery: int
    views: tuple[str, ...] = VIEWS

    def to_dict(self) -> dict:
        """Plain JSON-ready data; NaN becomes ``None``."""
        return {
            "metric": self.metric,
            "exclude_identical_view": self.exclude_identical_view,
            "views": list(self.views),
            "mean": {name: _to_json(value) for name, value in self.mean.items()},
            "per_view": {
                name: {view: _to_json(value) for view, value in row.items()}
                for name, row in self.per_view.items()
            },
            "accuracy": {
                name: [[_to_json(value) for value in row] for row in matrix.tolist()]
                for name, matrix in self.accuracy.items()
            },
            "num_probes": dict(self.num_probes),
            "num_gallery": self.num_gallery,
        }

    @classmethod
    def from_dict(cls, data: dict) -> EvaluationResult:
        """The inverse of :meth:`to_dict` (``None`` back to NaN)."""
        return cls(
            metric=data["metric"],
            exclude_identical_view=data["exclude_identical_view"],
            mean={name: _from_json(value) for name, value in data["mean"].items()},
            per_view={
                name: {view: _from_json(value) for view, value in row.items()}
                for name, row in data["per_view"].items()
            },
            accuracy={
                name: np.array([[_from_json(v) for v in row] for row in matrix], dtype=float)
                for name, matrix in data["accuracy"].items()
            },
            num_probes={name: int(count) for name, count in data["num_probes"].items()},
            num_gallery=int(data["num_gallery"]),
            views=tuple(data["views"]),
        )


def _to_json(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _from_json(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _labels(
    values: Sequence[str] | np.ndarray, count: int, name: str, allowed: Sequence[str] | None = None
) -> np.ndarray:
    """One string label per sequence → ``str [count]``; labels outside ``allowed`` are refused."""
    labels = np.asarray(values)
    if labels.shape != (count,):
        raise ValueError(f"{name}: expected one label per embedding ({count}), got {labels.shape}")
    labels = labels.astype(str)
    if allowed is not None:
        unknown = sorted(set(labels.tolist()) - set(allowed))
        if unknown:
            raise ValueError(f"{name}: not CASIA-B labels: {unknown[:5]}; expected {allowed}")
    return labels


def check_labels(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings [n, c, p] and their labels as arrays, each ``str [n]``; conditions and views
    must be CASIA-B's."""
    feats = _check_feats(feats, "feats")
    return (
        feats,
        _labels(subjects, len(feats), "subjects"),
        _labels(conditions, len(feats), "conditions", CONDITIONS),
        _labels(views, len(feats), "views", VIEWS),
    )


def _hits_per_gallery_view(
    probe_feats: np.ndarray,
    probe_subjects: np.ndarray,
    gallery_feats: np.ndarray,
    gallery_subjects: np.ndarray,
    gallery_views: np.ndarray,
    metric: str,
    chunk: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each probe's nearest gallery sequence, view by view, is the right subject.

    In probe_feats: [m, c, p], gallery_feats: [g, c, p] → hits bool [m, 11] and
    has_gallery bool [11] (False for a gallery view with no sequence; its hits are False).
    """
    hits = np.zeros((len(probe_feats), len(VIEWS)), dtype=bool)
    has_gallery = np.zeros(len(VIEWS), dtype=bool)
    for column, view in enumerate(VIEWS):
        in_view = gallery_views == view
        has_gallery[column] = in_view.any()
        if not has_gallery[column] or len(probe_feats) == 0:
            continue
        predicted = rank1_predictions(
            probe_feats, gallery_feats[in_view], gallery_subjects[in_view], metric, chunk
        )
        hits[:, column] = predicted == probe_subjects
    return hits, has_gallery


def _accuracy_matrix(
    hits: np.ndarray, probe_views: np.ndarray, has_gallery: np.ndarray, exclude_identical: bool
) -> np.ndarray:
    """In hits: bool [k, 11], probe_views: [k], has_gallery: [11] → percent [11, 11]."""
    matrix = np.full((len(VIEWS), len(VIEWS)), np.nan)
    for row, view in enumerate(VIEWS):
        from_view = probe_views == view
        if from_view.any():
            matrix[row] = 100.0 * hits[from_view].mean(axis=0)
    matrix[:, ~has_gallery] = np.nan
    if exclude_identical:
        np.fill_diagonal(matrix, np.nan)
    return matrix


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` skipping NaN; NaN (without a warning) where every value is NaN."""
    valid = ~np.isnan(values)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / valid.sum(axis=axis)


def evaluate(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
    metric: str = "euc",
    exclude_identical_view: bool = True,
    chunk: int | None = None,
) -> EvaluationResult:
    """Run the standard protocol on the embeddings of one set of test subjects.

    In feats: [n, c, p]; subjects, conditions, views: [n] labels such as ``'001'``, ``'nm-05'``,
    ``'090'``. Conditions and views must be CASIA-B's; any subset of sequences may be present.
    ``exclude_identical_view=False`` keeps the probe-view = gallery-view cells in the means.
    """
    _check_metric(metric)
    feats, subjects, conditions, views = check_labels(feats, subjects, conditions, views)

    gallery = np.isin(conditions, GALLERY_CONDITIONS)
    probes = np.isin(conditions, [c for conds in PROBE_SETS.values() for c in conds])
    hits, has_gallery = _hits_per_gallery_view(
        feats[probes],
        subjects[probes],
        feats[gallery],
        subjects[gallery],
        views[gallery],
        metric,
        chunk,
    )

    mean, per_view, accuracy, num_probes = {}, {}, {}, {}
    for name, set_conditions in PROBE_SETS.items():
        in_set = np.isin(conditions[probes], set_conditions)
        matrix = _accuracy_matrix(
            hits[in_set], views[probes][in_set], has_gallery, exclude_identical_view
        )
        row_means = _nanmean(matrix, axis=1)
        accuracy[name] = matrix
        per_view[name] = dict(zip(VIEWS, row_means.tolist(), strict=True))
        mean[name] = float(_nanmean(row_means, axis=0))
        num_probes[name] = int(in_set.sum())
    return EvaluationResult(
        metric=metric,
        exclude_identical_view=exclude_identical_view,
        mean=mean,
        per_view=per_view,
        accuracy=accuracy,
        num_probes=num_probes,
        num_gallery=int(gallery.sum()),
    )
