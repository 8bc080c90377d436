"""training.evaluation.galleries and the identification calibration, on hand-made scores."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import calibrate_identification, check_rule, stranger_curves
from training.evaluation.galleries import (
    ViewScores,
    check_threshold,
    dir_at_fpir,
    search_galleries,
    stranger_scores,
    view_scores,
)


def made_scores(people: int, views: int, probes_each: int, seed: int = 0) -> ViewScores:
    """Independent stranger scores ~ N(0.90, 0.02) at every view; a walker's own subject
    scores ~ N(0.97, 0.02). Probe sets cycle NM, BG, CL."""
    rng = np.random.default_rng(seed)
    probe_subject = np.repeat(np.arange(people), probes_each)
    best = rng.normal(0.90, 0.02, (len(probe_subject), people, views)).astype(np.float32)
    own = np.arange(len(probe_subject))
    best[own, probe_subject] = rng.normal(0.97, 0.02, (len(own), views))
    return ViewScores(
        best,
        probe_subject,
        (np.arange(len(probe_subject)) % 3).astype(np.int8),
        np.array([f"{i:03d}" for i in range(people)]),
        np.array([f"{v * 18:03d}" for v in range(views)]),
    )


def test_view_scores_keep_each_subjects_best_walk_at_each_view():
    # four gallery walks and two probes, as unit vectors whose inner products we choose
    feats = np.zeros((6, 4, 1), np.float32)
    feats[0, 0] = feats[1, 1] = feats[2, 2] = feats[3, 0] = 1  # gallery
    feats[4, 0] = 1  # probe of subject 001: like walks 0 and 3
    feats[5, 1], feats[5, 2] = 0.6, 0.8  # probe of subject 002
    subjects = ["001", "001", "002", "002", "001", "002"]
    conditions = ["nm-01", "nm-02", "nm-01", "nm-02", "nm-05", "cl-01"]
    views = ["000", "018", "000", "018", "090", "090"]
    scores = view_scores(feats, subjects, conditions, views)
    assert list(scores.subjects) == ["001", "002"]
    assert list(scores.views) == ["000", "018"]
    assert scores.best[0].tolist() == [[1, 0], [0, 1]]  # probe 4: 001's 000, 002's 018
    assert scores.best[1] == pytest.approx(np.array([[0, 0.6], [0.8, 0]]))
    assert scores.probe_subject.tolist() == [0, 1]
    assert scores.probe_set.tolist() == [0, 2]  # NM, CL


def test_a_one_view_gallery_sees_only_its_view():
    scores = made_scores(people=4, views=2, probes_each=5)
    scores.best[:, :, 0] = 0.1  # view 0 worthless, view 1 as made
    one = search_galleries(scores, 2, "one", draws=4)  # draws alternate views 0, 1, 0, 1
    assert (one.stranger_top <= 0.1).sum() == len(one.stranger_top) // 2
    every = search_galleries(scores, 2, "all", draws=4)
    assert (every.stranger_top > 0.5).all()  # view 1 is always there
    assert every.composition == {11: 2}
    assert one.composition == {1: 2}


def test_searches_split_strangers_from_enrolled_walkers():
    scores = made_scores(people=5, views=3, probes_each=4)
    searches = search_galleries(scores, 3, "all", draws=10)
    assert len(searches.stranger_top) == 10 * 2 * 4  # 2 strangers a gallery, 4 walks each
    assert len(searches.genuine_top) == 10 * 3 * 4
    assert searches.genuine_right.mean() > 0.9  # own subject scores 0.97, others 0.90
    with pytest.raises(ValueError, match="no strangers"):
        search_galleries(scores, 5, "all")
    with pytest.raises(ValueError, match="kind"):
        search_galleries(scores, 2, "some")


def test_check_counts_what_the_threshold_lets_through():
    scores = made_scores(people=6, views=2, probes_each=10)
    searches = search_galleries(scores, 3, "all", draws=20)
    check = check_threshold(searches, 0.95)
    assert check.fpir == pytest.approx(np.mean(searches.stranger_top >= np.float32(0.95)))
    right = searches.genuine_right & (searches.genuine_top >= np.float32(0.95))
    assert check.dir == pytest.approx(right.mean())
    assert set(check.dir_per_condition) == {"NM", "BG", "CL"}
    assert check.fpir_interval[0] <= check.fpir <= check.fpir_interval[1]
    assert dir_at_fpir(searches, np.array([1.0]))[0] == pytest.approx(searches.genuine_right.mean())


def test_stranger_scores_never_pair_a_walker_with_their_own_subject():
    scores = made_scores(people=4, views=3, probes_each=6)
    found = stranger_scores(scores, views=2, draws=3)
    assert len(found.scores) == 4 * 3 * (3 * 6)  # subjects × draws × strangers' walks
    assert (found.stranger != found.subject).all()
    assert found.scores.max() < 0.96  # own-subject scores (0.97 ± 0.02) are never among them


def test_curves_from_independent_strangers_keep_the_promised_fpir():
    """Where strangers' scores are independent, as the rule assumes, galleries of held-out
    people are named at about the promised rate: the curves are an upper bound (80 %), so
    at or a little under it."""
    fitted, measured = made_scores(40, 11, 30, seed=1), made_scores(40, 11, 30, seed=2)
    model = stranger_curves(fitted)
    from models.identification import StrangerModel

    rule = StrangerModel({c.views: c.rates_model() for c in model})
    for check in check_rule(measured, rule, 0.05, sizes=(5, 20), draws=40):
        assert 0.02 <= check.fpir <= 0.065, check
        assert check.dir > 0.3


def test_calibration_on_labelled_embeddings_gives_curves_and_honest_checks():
    rng = np.random.default_rng(0)
    people, walks = 10, []
    centres = rng.normal(size=(people, 32, 2)).astype(np.float32)
    subjects, conditions, views = [], [], []
    for person in range(people):
        for condition in ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "bg-01", "cl-01"):
            for view in ("000", "090", "180"):
                walks.append(centres[person] + rng.normal(0, 0.7, (32, 2)))
                subjects.append(f"{person:03d}")
                conditions.append(condition)
                views.append(view)
    calibration = calibrate_identification(np.stack(walks), subjects, conditions, views, "000-009")
    assert [c.views for c in calibration.curves] == list(range(1, 12))
    assert calibration.subject_count == people
    assert calibration.pair_curve is not None
    assert {(c.subjects, c.views) for c in calibration.checks} == {
        (s, k) for s in (4,) for k in ("all", "one")
    }  # halves of 5 subjects: galleries of 4, the curves fitted on the other half
    for check in calibration.checks:  # 10 halvings both ways, 60 galleries, 9 walks a stranger
        assert check.searches == 20 * 60 * 9
        low, high = check.fpir_interval
        assert low <= high
    assert calibration.measured_up_to == 4
    model = calibration.model()
    assert model.threshold(0.01, {11: 5}) > model.threshold(0.01, {1: 5})
