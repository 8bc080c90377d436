"""training.evaluation.protocol: distances and the standard CASIA-B rank-1 protocol."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from training.data.casia_b import CONDITIONS, VIEWS
from training.evaluation.protocol import (
    GALLERY_CONDITIONS,
    PROBE_SETS,
    distance_matrix,
    evaluate,
    rank1_predictions,
)

REPO = Path(__file__).resolve().parents[3]

# --- distances -------------------------------------------------------------------------------


def naive_distances(probe: np.ndarray, gallery: np.ndarray, metric: str) -> np.ndarray:
    out = np.zeros((len(probe), len(gallery)))
    for i, a in enumerate(probe):
        for j, b in enumerate(gallery):
            per_part = []
            for k in range(a.shape[1]):
                u, v = a[:, k], b[:, k]
                if metric == "euc":
                    per_part.append(np.sqrt(np.sum((u - v) ** 2)))
                else:
                    per_part.append(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
            out[i, j] = np.mean(per_part) if metric == "euc" else 1.0 - np.mean(per_part)
    return out


@pytest.mark.parametrize("metric", ["euc", "cos"])
@pytest.mark.parametrize("chunk", [None, 1, 3, 100])
def test_distance_matrix_equals_a_double_loop(metric, chunk):
    rng = np.random.default_rng(7)
    probe, gallery = rng.normal(size=(7, 5, 4)), rng.normal(size=(6, 5, 4))
    got = distance_matrix(probe, gallery, metric, chunk=chunk)
    assert got.shape == (7, 6)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, naive_distances(probe, gallery, metric), rtol=1e-9, atol=1e-9)


def test_distance_matrix_keeps_float32_and_handles_identical_vectors():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(5, 16, 3)).astype(np.float32)
    got = distance_matrix(feats, feats, "euc", chunk=2)
    assert got.dtype == np.float32
    assert np.all(got >= 0)  # clamped before the square root: no NaN from rounding
    # ||a||² + ||b||² − 2ab cancels to rounding noise for a = b: small, not exact, in float32
    np.testing.assert_allclose(np.diag(got), 0.0, atol=1e-2)
    off_diagonal = ~np.eye(5, dtype=bool)
    expected = naive_distances(feats, feats, "euc")
    np.testing.assert_allclose(got[off_diagonal], expected[off_diagonal], rtol=1e-4)


def test_cosine_distance_survives_zero_parts():
    probe = np.zeros((2, 3, 2))
    probe[1, :, 1] = (1.0, 0.0, 0.0)  # probe 1: part 0 zero, part 1 along x
    gallery = np.zeros((1, 3, 2))
    gallery[0, :, :] = [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]  # both parts along x
    got = distance_matrix(probe, gallery, "cos")
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[:, 0], [1.0, 1.0 - 0.5])  # zero part: similarity 0


def test_distance_matrix_with_no_probes():
    assert distance_matrix(np.zeros((0, 4, 2)), np.ones((3, 4, 2))).shape == (0, 3)


@pytest.mark.parametrize(
    ("probe", "gallery", "kwargs", "message"),
    [
        ((2, 4, 2), (3, 4, 2), {"metric": "l1"}, "unknown metric"),
        ((2, 4, 2), (3, 5, 2), {}, "differ in channels or parts"),
        ((2, 4), (3, 4), {}, r"\[n, c, p\]"),
        ((2, 4, 2), (3, 4, 2), {"chunk": 0}, "chunk"),
    ],
)
def test_distance_matrix_refuses_bad_input(probe, gallery, kwargs, message):
    with pytest.raises(ValueError, match=message):
        distance_matrix(np.ones(probe), np.ones(gallery), **kwargs)


def test_rank1_predictions_euclidean_and_cosine_disagree():
    # [10, 0] is 3.16 from [9, 3] but 9 from [1, 0]; in angle it is 0° from [1, 0], 18° from [9, 3]
    probe = np.array([[[10.0], [0.0]]])
    gallery = np.array([[[1.0], [0.0]], [[9.0], [3.0]]])
    assert rank1_predictions(probe, gallery, ["near-angle", "near-point"], "euc")[0] == "near-point"
    assert rank1_predictions(probe, gallery, ["near-angle", "near-point"], "cos")[0] == "near-angle"


def test_rank1_predictions_chunked_matches_full_and_breaks_ties_on_first_row():
    rng = np.random.default_rng(3)
    probe, gallery = rng.normal(size=(20, 8, 2)), rng.normal(size=(9, 8, 2))
    names = np.array([f"{i:03d}" for i in range(9)])
    full = names[distance_matrix(probe, gallery).argmin(axis=1)]
    np.testing.assert_array_equal(rank1_predictions(probe, gallery, names, chunk=4), full)
    twins = np.concatenate([gallery[:1], gallery[:1]])
    assert rank1_predictions(gallery[:1], twins, ["first", "second"])[0] == "first"


def test_rank1_predictions_refuses_an_empty_or_mislabelled_gallery():
    with pytest.raises(ValueError, match="empty"):
        rank1_predictions(np.ones((2, 3, 1)), np.ones((0, 3, 1)), [])
    with pytest.raises(ValueError, match="subjects"):
        rank1_predictions(np.ones((2, 3, 1)), np.ones((2, 3, 1)), ["001"])


# --- the protocol on the hand example (tests/training/evaluation/conftest.py) ----------------
#
# Gallery view 000: 001 = [1, 0], 002 = [0, 1]; gallery view 018: 001 = [2, 0], 002 = [9, 3].
# Nearest gallery subject (euc | cos), ✓ = right:
#   NM 001/000 [10, 0]   vs 018: 002 (8.0 vs 3.16) ✗ | 001 (cos 1.0 vs 0.95) ✓   vs 000: ✓ | ✓
#   NM 002/000 [0, 2]    vs 018: 001 (2.83 vs 9.06) ✗ | 002 (cos 0.0 vs 0.32) ✓  vs 000: ✓ | ✓
#   NM 001/018 [1, 0.1]  vs 000: 001 (0.10 vs 1.35) ✓ | 001 ✓                   vs 018: ✓ | ✓
#   NM 002/018 [.9, .1]  vs 000: 001 (0.14 vs 1.27) ✗ | 001 ✗                   vs 018: ✗ | ✗
#   BG 001/000 [0, 3]    vs 018: 001 (3.61 vs 9.0) ✓ | 002 (cos 0.0 vs 0.32) ✗   vs 000: ✗ | ✗
# Cells are (probe view, gallery view) → percent; every other cell must be NaN.

HAND_EXPECTED = {
    ("euc", True): {
        "NM": ({("000", "018"): 0.0, ("018", "000"): 50.0}, {"000": 0.0, "018": 50.0}, 25.0),
        "BG": ({("000", "018"): 100.0}, {"000": 100.0}, 100.0),
    },
    ("cos", True): {
        "NM": ({("000", "018"): 100.0, ("018", "000"): 50.0}, {"000": 100.0, "018": 50.0}, 75.0),
        "BG": ({("000", "018"): 0.0}, {"000": 0.0}, 0.0),
    },
    ("euc", False): {
        "NM": (
            {
                ("000", "018"): 0.0,
                ("018", "000"): 50.0,
                ("000", "000"): 100.0,
                ("018", "018"): 50.0,
            },
            {"000": 50.0, "018": 50.0},
            50.0,
        ),
        "BG": ({("000", "018"): 100.0, ("000", "000"): 0.0}, {"000": 50.0}, 50.0),
    },
    ("cos", False): {
        "NM": (
            {
                ("000", "018"): 100.0,
                ("018", "000"): 50.0,
                ("000", "000"): 100.0,
                ("018", "018"): 50.0,
            },
            {"000": 100.0, "018": 50.0},
            75.0,
        ),
        "BG": ({("000", "018"): 0.0, ("000", "000"): 0.0}, {"000": 0.0}, 0.0),
    },
}


def finite_cells(matrix: np.ndarray) -> dict[tuple[str, str], float]:
    return {
        (VIEWS[r], VIEWS[c]): float(matrix[r, c])
        for r, c in zip(*np.nonzero(~np.isnan(matrix)), strict=True)
    }


@pytest.mark.parametrize(("metric", "exclude"), list(HAND_EXPECTED))
def test_hand_example(hand_example, metric, exclude):
    result = evaluate(*hand_example, metric=metric, exclude_identical_view=exclude)
    assert result.metric == metric
    assert result.exclude_identical_view is exclude
    assert result.num_probes == {"NM": 4, "BG": 1, "CL": 0}
    assert result.num_gallery == 4
    for name, (cells, per_view, mean) in HAND_EXPECTED[(metric, exclude)].items():
        assert result.accuracy[name].shape == (11, 11)
        assert finite_cells(result.accuracy[name]) == cells
        assert {v: x for v, x in result.per_view[name].items() if not math.isnan(x)} == per_view
        assert result.mean[name] == mean
    assert math.isnan(result.mean["CL"])
    assert np.isnan(result.accuracy["CL"]).all()


def test_hand_example_does_not_depend_on_chunking_or_row_order(hand_example):
    feats, subjects, conditions, views = hand_example
    order = np.random.default_rng(0).permutation(len(feats))
    for metric in ("euc", "cos"):
        reference = evaluate(feats, subjects, conditions, views, metric).to_dict()
        shuffled = evaluate(
            feats[order], subjects[order], conditions[order], views[order], metric, chunk=1
        )
        assert shuffled.to_dict() == reference


# --- synthetic full data sets ----------------------------------------------------------------


def full_dataset(
    num_subjects: int, same_view_only: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every subject × condition × view, one part.

    Plain: a subject is its one-hot vector plus a little noise, so every cell is 100 %.
    ``same_view_only``: a sequence is one-hot in (view, subject); probes also carry 0.5 on the
    slot of the *next* subject in every other view, so the same view finds the right subject
    and every other view finds the next one (diagonal 100 %, elsewhere 0 %).
    """
    rng = np.random.default_rng(0)
    rows = [(s, c, v) for s in range(num_subjects) for c in CONDITIONS for v in range(len(VIEWS))]
    if same_view_only:
        feats = np.zeros((len(rows), len(VIEWS) * num_subjects, 1))
        for i, (s, c, v) in enumerate(rows):
            feats[i, v * num_subjects + s, 0] = 1.0
            if c not in GALLERY_CONDITIONS:
                for w in set(range(len(VIEWS))) - {v}:
                    feats[i, w * num_subjects + (s + 1) % num_subjects, 0] = 0.5
    else:
        feats = np.eye(num_subjects)[[s for s, _, _ in rows]][:, :, None].repeat(2, axis=2)
        feats = feats + 0.01 * rng.normal(size=feats.shape)
    subjects = np.array([f"{s + 1:03d}" for s, _, _ in rows])
    conditions = np.array([c for _, c, _ in rows])
    views = np.array([VIEWS[v] for _, _, v in rows])
    return feats, subjects, conditions, views


@pytest.mark.parametrize("metric", ["euc", "cos"])
def test_identical_view_exclusion_changes_only_the_diagonal(metric):
    data = full_dataset(3, same_view_only=True)
    excluded = evaluate(*data, metric=metric)
    included = evaluate(*data, metric=metric, exclude_identical_view=False)
    off_diagonal = ~np.eye(11, dtype=bool)
    for name in PROBE_SETS:
        assert np.isnan(np.diag(excluded.accuracy[name])).all()
        np.testing.assert_array_equal(np.diag(included.accuracy[name]), 100.0)
        np.testing.assert_array_equal(excluded.accuracy[name][off_diagonal], 0.0)
        np.testing.assert_array_equal(included.accuracy[name][off_diagonal], 0.0)
        assert excluded.mean[name] == 0.0
        assert included.mean[name] == pytest.approx(100.0 / 11)
        assert included.per_view[name]["090"] == pytest.approx(100.0 / 11)
        assert excluded.num_probes[name] == included.num_probes[name] == 3 * 2 * 11


def test_missing_sequences_are_absent_cells_not_errors():
    feats, subjects, conditions, views = full_dataset(3)
    gone = (
        (np.isin(conditions, GALLERY_CONDITIONS) & (views == "090"))  # no gallery from 090
        | (np.isin(conditions, PROBE_SETS["NM"]) & (views == "180"))  # no NM probe from 180
        | np.isin(conditions, PROBE_SETS["CL"])  # no CL probe at all
        | (np.isin(conditions, GALLERY_CONDITIONS) & (subjects == "002") & (views == "036"))
    )
    keep = ~gone
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" on the way
        result = evaluate(feats[keep], subjects[keep], conditions[keep], views[keep])

    col_090, col_036, row_180 = VIEWS.index("090"), VIEWS.index("036"), VIEWS.index("180")
    for name in ("NM", "BG"):
        matrix = result.accuracy[name]
        assert np.isnan(matrix[:, col_090]).all()
        # 002's probes find no 002 in gallery view 036: a miss, one subject in three
        column = np.delete(matrix[:, col_036], col_036)
        if name == "NM":
            assert np.isnan(column[-1])  # the 180 row
            column = column[:-1]
        np.testing.assert_allclose(column, 200.0 / 3)
        others = np.delete(np.delete(matrix, [col_090, col_036], axis=1), row_180, axis=0)
        assert set(others[~np.isnan(others)].tolist()) == {100.0}
    assert np.isnan(result.accuracy["NM"][row_180]).all()
    assert math.isnan(result.per_view["NM"]["180"])
    assert result.per_view["BG"]["180"] == pytest.approx((8 * 100.0 + 200.0 / 3) / 9)
    assert result.num_probes == {"NM": 3 * 2 * 10, "BG": 3 * 2 * 11, "CL": 0}
    assert result.num_gallery == 3 * 4 * 10 - 4  # 002 lost nm-01..04 from 036
    assert math.isnan(result.mean["CL"])
    assert all(math.isnan(v) for v in result.per_view["CL"].values())


def test_nothing_to_evaluate_gives_nan_everywhere():
    feats, subjects, conditions, views = full_dataset(2)
    only_gallery = np.isin(conditions, GALLERY_CONDITIONS)
    no_gallery = ~only_gallery
    for keep in (only_gallery, no_gallery, np.zeros(len(feats), dtype=bool)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = evaluate(feats[keep], subjects[keep], conditions[keep], views[keep])
        assert all(math.isnan(result.mean[name]) for name in PROBE_SETS)
        assert all(np.isnan(result.accuracy[name]).all() for name in PROBE_SETS)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("views", "90", "views: not CASIA-B"), ("conditions", "NM-05", "conditions: not CASIA-B")],
)
def test_evaluate_refuses_labels_that_are_not_casia_b(hand_example, column, value, message):
    feats, subjects, conditions, views = hand_example
    labels = {"conditions": conditions.copy(), "views": views.copy()}
    labels[column][0] = value
    with pytest.raises(ValueError, match=message):
        evaluate(feats, subjects, labels["conditions"], labels["views"])


def test_evaluate_refuses_mismatched_lengths_and_unknown_metrics(hand_example):
    feats, subjects, conditions, views = hand_example
    with pytest.raises(ValueError, match="one label per embedding"):
        evaluate(feats, subjects[:-1], conditions, views)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(feats, subjects, conditions, views, metric="l2")


def test_protocol_is_numpy_only():
    code = "import sys, training.evaluation.protocol; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
