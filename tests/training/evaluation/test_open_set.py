"""training.evaluation.open_set on hand-made cases whose every figure is worked out below."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from training.evaluation.open_set import (
    ALL,
    SET_NAMES,
    accepted,
    equal_error_rate,
    evaluate_open_set,
    identify_open_set,
    pair_scores,
    search_splits,
    subject_bootstrap,
    threshold_for_rate,
    verify_pairs,
)
from training.evaluation.report import format_open_set, plot_open_set


def _unit(degrees: float) -> tuple[float, float]:
    radians = math.radians(degrees)
    return (math.cos(radians), math.sin(radians))


# Verification: two subjects, gallery from views 000 and 018, probes whose cosine with each
# gallery vector is known. Across views, each probe meets the one gallery view it is not from.
#   A nm-05 @000 at 0°  → A@018: 1.0 (genuine NM),  B@018: 0.0 (impostor NM)
#   A cl-01 @018 at 60° → A@000: 0.5 (genuine CL),  B@000: 0.866 (impostor CL)
#   B bg-01 @000 at 90° → B@018: 1.0 (genuine BG),  A@018: 0.0 (impostor BG)
VERIFICATION_ROWS = [
    ("A", "nm-01", "000", _unit(0)),
    ("A", "nm-01", "018", _unit(0)),
    ("B", "nm-01", "000", _unit(90)),
    ("B", "nm-01", "018", _unit(90)),
    ("A", "nm-05", "000", _unit(0)),
    ("A", "cl-01", "018", _unit(60)),
    ("B", "bg-01", "000", _unit(90)),
]


def _arrays(rows):
    subjects, conditions, views, vectors = zip(*rows, strict=True)
    feats = np.array(vectors, dtype=np.float32)[:, :, None]  # one part: score = cosine
    return feats, np.array(subjects), np.array(conditions), np.array(views)


@pytest.fixture
def verification_case():
    return _arrays(VERIFICATION_ROWS)


def test_threshold_for_rate_accepts_at_most_the_rate():
    negatives = np.arange(1, 11) / 10  # 0.1 … 1.0
    assert np.mean(negatives >= threshold_for_rate(negatives, 0.1)) == 0.1
    assert threshold_for_rate(negatives, 0.1) == np.nextafter(0.9, 1.0)
    assert np.mean(negatives >= threshold_for_rate(negatives, 0.05)) == 0.0
    assert np.mean(negatives >= threshold_for_rate(negatives, 0.0)) == 0.0
    assert threshold_for_rate(negatives, 1.0) == -math.inf
    # a tie at the boundary is rejected whole: the rate stays under the target
    assert np.mean(np.array([0.5, 0.5, 0.2]) >= threshold_for_rate([0.5, 0.5, 0.2], 0.34)) == 0
    with pytest.raises(ValueError, match="negative"):
        threshold_for_rate(np.array([]), 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        threshold_for_rate(negatives, -0.1)
    with pytest.raises(ValueError, match="NaN"):
        threshold_for_rate(np.array([0.5, np.nan]), 0.1)


def test_float32_scores_keep_their_ties_out():
    # the boundary tie must be rejected whole in float32 too (a float64 step above a float32
    # score would round back onto it)
    scores = np.array([0.9, 0.5, 0.5, 0.2], dtype=np.float32)
    threshold = threshold_for_rate(scores, 0.25)
    assert np.mean(scores >= threshold) == 0.25
    assert accepted(scores, threshold) == 0.25


def test_equal_error_rate_of_a_hand_case():
    # at 0.7: one impostor of three accepted, one genuine (0.3) of three rejected
    eer = equal_error_rate(np.array([0.9, 0.8, 0.3]), np.array([0.7, 0.2, 0.1]))
    assert eer == pytest.approx(1 / 3)
    assert equal_error_rate(np.array([0.9, 0.8]), np.array([0.2, 0.1])) == 0.0


def test_pairs_are_cross_view_by_default(verification_case):
    pairs = pair_scores(*verification_case)
    assert pairs.subjects == 2
    genuine = [SET_NAMES[code] for code in pairs.genuine_set]
    impostor = [SET_NAMES[code] for code in pairs.impostor_set]
    assert sorted(zip(genuine, pairs.genuine.round(3).tolist(), strict=True)) == [
        ("BG", 1.0),
        ("CL", 0.5),
        ("NM", 1.0),
    ]
    found = sorted(zip(impostor, pairs.impostor.tolist(), strict=True))
    assert [name for name, _ in found] == ["BG", "CL", "NM"]
    assert [score for _, score in found] == pytest.approx([0.0, 0.866, 0.0], abs=1e-3)
    with_same_view = pair_scores(*verification_case, cross_view=False)
    assert (len(with_same_view.genuine), len(with_same_view.impostor)) == (6, 6)


def test_verification_at_a_far(verification_case):
    pairs = pair_scores(*verification_case)
    result = verify_pairs(pairs, fars=(0.34, 0.1), given=[("half", 0.5)])
    assert result.pairs[ALL] == {"genuine": 3, "impostor": 3}
    assert result.pairs["CL"] == {"genuine": 1, "impostor": 1}
    loose, strict = result.at_far
    # FAR 0.34 allows one impostor of three: the CL impostor (0.866) gets in, every genuine too
    assert loose.false_rate == {ALL: 1 / 3, "NM": 0.0, "BG": 0.0, "CL": 1.0}
    assert loose.true_rate[ALL] == 1.0
    # FAR 0.1 allows none: the threshold rises past 0.866 and the CL genuine (0.5) is lost
    assert strict.threshold > 0.866
    assert strict.false_rate[ALL] == 0.0
    assert strict.true_rate == {ALL: 2 / 3, "NM": 1.0, "BG": 1.0, "CL": 0.0}
    # with its own threshold, NM keeps every genuine at any FAR; CL loses its one
    assert result.own_threshold["NM"][1].true_rate["NM"] == 1.0
    assert result.own_threshold["CL"][1].true_rate["CL"] == 0.0
    assert result.eer["NM"] == 0.0
    (half,) = result.given
    assert half.label == "half"
    assert half.false_rate[ALL] == 1 / 3
    assert half.true_rate[ALL] == 1.0


# Open-set identification: A, B, C enrolled from view 000; probes from 018. C is the impostor.
#   A nm-05 → A 1.0 (right)          B cl-01 → B 0.8 (right; A 0.6)
#   A bg-01 → B 0.8 (wrong; A 0.6)   C nm-05 → best of A, B: 0.0   C cl-01 → A 0.8
IDENTIFICATION_ROWS = [
    ("A", "nm-01", "000", (1.0, 0.0, 0.0, 0.0)),
    ("B", "nm-01", "000", (0.0, 1.0, 0.0, 0.0)),
    ("C", "nm-01", "000", (0.0, 0.0, 1.0, 0.0)),
    ("A", "nm-05", "018", (1.0, 0.0, 0.0, 0.0)),
    ("B", "cl-01", "018", (0.6, 0.8, 0.0, 0.0)),
    ("A", "bg-01", "018", (0.6, 0.8, 0.0, 0.0)),
    ("C", "nm-05", "018", (0.0, 0.0, 0.6, 0.8)),
    ("C", "cl-01", "018", (0.8, 0.0, 0.0, 0.6)),
]


def test_open_set_identification_with_a_held_out_impostor():
    searches = search_splits(*_arrays(IDENTIFICATION_ROWS), impostor_sets=[["C"]])
    assert (searches.enrolled, searches.impostors) == (2, 1)
    # C is out of the gallery: its probes meet only A and B (0.0 and 0.8; with C in, 0.6 and 0.8)
    assert sorted(searches.top[~searches.mated].tolist()) == pytest.approx([0.0, 0.8])
    result = identify_open_set(searches, fpirs=(0.5, 0.1), given=[("0.9", 0.9), ("any", -1.0)])
    assert result.probes[ALL] == {"mated": 3, "non_mated": 2}
    assert result.rank1 == pytest.approx({ALL: 2 / 3, "NM": 1.0, "BG": 0.0, "CL": 1.0})
    half, tenth = result.at_fpir
    # FPIR 0.5: C's 0.8 may pass, its 0.0 not; the two right answers are accepted
    assert half.false_rate[ALL] == 0.5
    assert half.true_rate[ALL] == pytest.approx(2 / 3)
    # FPIR 0.1: the threshold rises past 0.8, only A's 1.0 is left
    assert tenth.false_rate[ALL] == 0.0
    assert tenth.true_rate == pytest.approx({ALL: 1 / 3, "NM": 1.0, "BG": 0.0, "CL": 0.0})
    strict, anything = result.given
    assert (strict.false_rate[ALL], strict.true_rate[ALL]) == (0.0, pytest.approx(1 / 3))
    # with no threshold every impostor is someone and DIR is the rank-1 rate
    assert (anything.false_rate[ALL], anything.true_rate[ALL]) == (1.0, pytest.approx(2 / 3))


def test_figures_are_means_over_the_splits():
    # split 1 holds C out (as above); split 2 holds B out:
    #   mated A nm-05 → A 1.0 (right), A bg-01 → A 0.6 (right, B gone), C nm-05 → C 0.6 (right),
    #   C cl-01 → A 0.8 (wrong); impostor B cl-01 → A 0.6
    searches = search_splits(*_arrays(IDENTIFICATION_ROWS), impostor_sets=[["C"], ["B"]])
    result = identify_open_set(searches, fpirs=(0.1,), given=[("any", -1.0)])
    assert result.splits == 2
    (point,) = result.at_fpir
    # split 1: threshold above 0.8, DIR 1/3; split 2: threshold above 0.6, DIR 1/4 (A's 1.0, and
    # A's 0.8 is C's probe named wrong)
    assert point.false_rate[ALL] == 0.0
    assert point.true_rate[ALL] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert point.threshold == pytest.approx((0.8 + 0.6) / 2, abs=1e-6)
    # the given point pools both splits: 2 + 3 right of 3 + 4 mated probes
    assert result.given[0].true_rate[ALL] == pytest.approx(5 / 7)


def test_a_split_without_impostor_probes_is_left_out():
    rows = [*IDENTIFICATION_ROWS, ("D", "nm-01", "036", (0.0, 0.0, 0.0, -1.0))]  # gallery only
    searches = search_splits(*_arrays(rows), impostor_sets=[["C"], ["D"]])
    result = identify_open_set(searches, fpirs=(0.5,))
    assert result.splits == 1
    assert result.at_fpir[0].true_rate[ALL] == pytest.approx(2 / 3)


def test_random_splits_hold_out_the_share_asked_and_average():
    rows = IDENTIFICATION_ROWS
    searches = search_splits(*_arrays(rows), impostor_share=1 / 3, splits=6, seed=1)
    assert (searches.enrolled, searches.impostors) == (2, 1)
    assert len(searches.top) == 6 * 5
    # in each split the non-mated probes are exactly the probes of the one held-out subject
    probe_subjects = np.array([s for s, condition, _, _ in rows if condition != "nm-01"])
    held_out = []
    for split in range(6):
        non_mated = ~searches.mated[searches.split == split]
        (subject,) = set(probe_subjects[non_mated])
        assert (non_mated == (probe_subjects == subject)).all()
        held_out.append(subject)
    assert len(set(held_out)) > 1  # the splits are drawn, not fixed
    with pytest.raises(ValueError, match="at least one impostor"):
        search_splits(*_arrays(rows), impostor_share=0.0)
    with pytest.raises(ValueError, match="at least one impostor"):
        search_splits(*_arrays(rows), impostor_sets=[["A", "B", "C"]])


def test_a_probe_never_meets_its_own_view():
    # the only gallery sequence is from the probe's view: across views there is no answer
    rows = [("A", "nm-01", "000", (1.0, 0.0)), ("B", "nm-01", "018", (0.0, 1.0))]
    rows += [("A", "nm-05", "000", (1.0, 0.0)), ("B", "nm-05", "000", (0.0, 1.0))]
    searches = search_splits(*_arrays(rows), impostor_sets=[["B"]])
    mated = searches.mated
    assert np.isneginf(searches.top[mated]).all()
    assert not searches.correct[mated].any()


def test_report_json_text_and_figure(verification_case, tmp_path):
    result = evaluate_open_set(
        *verification_case, fars=(0.34,), given=[("card 1 %", 0.9)], splits=3
    )
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["verification"]["pairs"]["all"] == {"genuine": 3, "impostor": 3}
    assert data["identification"]["impostor_subjects"] == 1
    assert data["verification"]["given"][0]["label"] == "card 1 %"
    text = format_open_set(result)
    assert "3 genuine and 3 impostor pairs" in text
    assert "card 1 %" in text
    plot_open_set(result, tmp_path / "open_set.png")
    assert (tmp_path / "open_set.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_subject_bootstrap_brackets_the_rates_and_collapses_when_they_cannot_move():
    rng = np.random.default_rng(0)
    rows = []
    for subject in range(8):  # 8 subjects, each a cluster around its own direction
        centre = rng.normal(size=16)
        for condition, view in (("nm-01", "000"), ("nm-05", "018"), ("cl-01", "036")):
            rows.append((f"{subject:03d}", condition, view, centre + rng.normal(size=16)))
    pairs = pair_scores(*_arrays(rows))
    threshold = threshold_for_rate(pairs.impostor, 0.2)
    spread = subject_bootstrap(pairs, threshold, draws=500)
    far = np.mean(pairs.impostor >= threshold)
    tar = np.mean(pairs.genuine >= threshold)
    assert spread["far"][0] <= far <= spread["far"][1]
    assert spread["tar"][0] <= tar <= spread["tar"][1]
    assert spread["far"][1] > spread["far"][0]  # 8 subjects: the rate could move
    # every pair accepted, or none: no draw of subjects can change that
    assert subject_bootstrap(pairs, -2.0) == {"far": (1.0, 1.0), "tar": (1.0, 1.0)}
    assert subject_bootstrap(pairs, 2.0) == {"far": (0.0, 0.0), "tar": (0.0, 0.0)}


def test_a_bootstrap_draw_counts_pairs_as_often_as_both_subjects_were_drawn(verification_case):
    # A drawn twice, B once: impostor pairs A→B (NM 0.0, CL 0.866) count 2·1 = 2 times each,
    # B→A (BG 0.0) 1·2 = 2 times; genuine pairs of A (NM 1.0, CL 0.5) twice, of B (BG 1.0) once
    pairs = pair_scores(*verification_case)
    draw = np.array([[2, 1], [2, 1]])
    spread = subject_bootstrap(pairs, 0.6, weights=draw)
    assert spread["far"] == pytest.approx((2 / 6, 2 / 6))  # only CL's 0.866 passes 0.6
    assert spread["tar"] == pytest.approx((3 / 5, 3 / 5))  # A: 1 of 2 pairs, twice; B: 1 of 1
    spread = subject_bootstrap(pairs, 0.6, weights=np.array([[0, 3], [0, 3]]))
    assert spread["tar"] == pytest.approx((1.0, 1.0))  # B alone: no impostor pair at all
