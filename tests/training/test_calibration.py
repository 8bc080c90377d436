"""training.calibration on hand-made pairs, where the thresholds and rates are known."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import thresholds_of
from training.evaluation.open_set import MIN_BOOTSTRAP_SUBJECTS, SET_NAMES, Pairs


def made_pairs(impostor: list[float], genuine: list[float], subjects: int) -> Pairs:
    """Pairs spread round-robin over ``subjects`` subjects and the probe sets."""
    impostor_ = np.array(impostor, np.float32)
    genuine_ = np.array(genuine, np.float32)
    k, g = np.arange(len(impostor_)), np.arange(len(genuine_))
    return Pairs(
        genuine=genuine_,
        impostor=impostor_,
        genuine_set=(g % len(SET_NAMES)).astype(np.int8),
        impostor_set=(k % len(SET_NAMES)).astype(np.int8),
        subjects=subjects,
        genuine_subject=g % subjects,
        impostor_subjects=np.stack([k % subjects, (k + 1) % subjects], axis=1),
    )


def test_threshold_keeps_its_rate_and_rejects_a_tie_at_the_boundary():
    impostor = [i / 100 for i in range(100)]  # 0.00 … 0.99
    genuine = [0.5, 0.93, 0.95, 0.97, 0.99]
    (five,) = thresholds_of(made_pairs(impostor, genuine, 12), fars=[0.05])
    assert np.float32(0.94) < five.score <= np.float32(0.95)  # accepts 0.95 … 0.99: 5 of 100
    assert five.measured_far == pytest.approx(0.05)
    assert five.tar == pytest.approx(3 / 5)

    tied = [*impostor[:94], 0.95, *impostor[95:]]  # 0.94 becomes a second 0.95
    (four,) = thresholds_of(made_pairs(tied, genuine, 12), fars=[0.05])
    # 0.95 and above are now 6 pairs: the whole tie is rejected, so at most 5 % is kept
    assert np.float32(0.95) < four.score <= np.float32(0.96)
    assert four.measured_far == pytest.approx(0.04)
    assert four.tar == pytest.approx(2 / 5)


def test_a_rate_finer_than_the_pairs_accepts_no_impostor():
    (strict,) = thresholds_of(made_pairs([0.1, 0.2, 0.3], [0.25, 0.9], 12), fars=[0.01])
    assert strict.measured_far == 0.0
    assert np.float32(0.3) < strict.score <= np.float32(0.9)
    assert strict.tar == pytest.approx(0.5)


def test_intervals_only_with_enough_subjects():
    rng = np.random.default_rng(0)
    impostor, genuine = list(rng.uniform(0, 0.8, 2000)), list(rng.uniform(0.5, 1.0, 300))
    (enough,) = thresholds_of(made_pairs(impostor, genuine, MIN_BOOTSTRAP_SUBJECTS), [0.01])
    low, high = enough.far_interval
    assert low <= enough.measured_far <= high
    assert low < high
    assert enough.tar_interval[0] <= enough.tar <= enough.tar_interval[1]
    # two subjects: every draw with an impostor pair redraws the same two people
    (few,) = thresholds_of(made_pairs(impostor, genuine, 2), [0.01])
    assert few.far_interval is None
    assert few.tar_interval is None
    assert few.score == enough.score  # the threshold itself does not depend on it


def test_rates_outside_zero_one_are_refused():
    with pytest.raises(ValueError, match="false accept rates"):
        thresholds_of(made_pairs([0.1], [0.9], 12), fars=[0.0])


def normal_strangers(people: int, seed: int, centre: float = 3.0, spread: float = 0.35):
    """StrangerScores of ``people`` whose every stranger pair scores ``s = 1 - exp(-z)`` with
    ``z ~ N(centre, spread)`` (100 walks a pair)."""
    from training.evaluation.galleries import StrangerScores

    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a in range(people) for b in range(people) if a != b]
    stranger = np.repeat([a for a, _ in pairs], 100)
    subject = np.repeat([b for _, b in pairs], 100)
    z = rng.normal(centre, spread, len(stranger))
    return StrangerScores(-np.expm1(-z).astype(np.float32), stranger, subject, people)


def test_the_normal_fit_reaches_rates_no_stranger_measured_reached():
    from scipy.stats import norm

    from training.calibration import gaussian_stranger_curve, stranger_curve

    found = normal_strangers(12, seed=0)  # 13,200 scores: none as deep as 1 in 10^6
    deep = -np.expm1(-(3.0 + 0.35 * norm.isf(1e-6)))  # a score 1 in 10^6 strangers reach
    fitted = gaussian_stranger_curve(found, 1).rates_model()(deep)
    assert 1e-6 <= fitted <= 3e-6  # an upper bound, close
    # the scores' own tail, an exponential beyond the data, is stricter there by several times
    # (where the normal shape holds): the careful curve follows it, a stricter decision
    assert stranger_curve(found, 1).rates_model()(deep) > 3 * fitted


def test_the_careful_curve_is_the_larger_of_the_two_at_every_score():
    from training.calibration import (
        careful_stranger_curve,
        gaussian_stranger_curve,
        stranger_curve,
    )

    found = normal_strangers(8, seed=1, spread=0.5)
    careful = careful_stranger_curve(found, 3).rates_model()
    parts = [fit(found, 3).rates_model() for fit in (stranger_curve, gaussian_stranger_curve)]
    scores = np.linspace(0.8, 0.99999, 2000)  # below, between and beyond the grids' scores
    larger = np.max([p(scores) for p in parts], axis=0)
    assert (careful(scores) >= larger * (1 - 1e-9)).all()
    assert careful(scores) == pytest.approx(larger, rel=0.25)  # and no stricter than it must


def test_random_splits_halve_both_ways_even_with_an_odd_count():
    from training.calibration import random_splits

    for people in (24, 25):
        splits = list(random_splits(people, 3, seed=0))
        assert len(splits) == 6
        for (fitted, measured), (again, back) in zip(splits[::2], splits[1::2], strict=True):
            assert sorted([*fitted, *measured]) == list(range(people))
            assert {len(fitted), len(measured)} == {people // 2, people - people // 2}
            assert (again == measured).all()
            assert (back == fitted).all()
    assert len(list(random_splits(24, 3, fitted=18, seed=0))) == 3  # not a halving: one way
    assert [len(f) for f, _ in random_splits(24, 2, seed=1)] == [12, 12, 12, 12]
