"""models.identification: stranger rates, a gallery's FPIR and its decision threshold."""

from __future__ import annotations

import numpy as np
import pytest

from models.identification import (
    MAX_VIEWS,
    UNREACHABLE,
    StrangerModel,
    StrangerRates,
    composition_of,
    effective_views,
)


def exponential(views: int) -> StrangerRates:
    """rate(s) = exp(-(s - 0.9) / 0.01) / (views-dependent factor): more views, more chances."""
    scores = np.linspace(0.8, 0.95, 16)
    rates = np.minimum(1.0, views * 0.05 * np.exp(-(scores - 0.9) / 0.01))
    return StrangerRates(scores, rates, 0.95, float(rates[-1]), 0.01)


@pytest.fixture
def model() -> StrangerModel:
    return StrangerModel({k: exponential(k) for k in range(1, MAX_VIEWS + 1)})


def test_rates_interpolate_inside_and_follow_the_tail_beyond():
    curve = exponential(1)
    assert curve(0.9) == pytest.approx(0.05)
    assert curve(0.95) == pytest.approx(0.05 * np.exp(-5))
    assert curve(0.97) == pytest.approx(0.05 * np.exp(-7))  # the tail, continuous at 0.95
    assert curve(0.5) == 1.0  # below the curve: everyone
    values = curve(np.linspace(0.7, 1.0, 200))
    assert np.all(np.diff(values) <= 1e-15)


def test_curves_refuse_rising_rates_and_a_missing_view_count():
    with pytest.raises(ValueError, match="must not rise"):
        StrangerRates([0.1, 0.2], [0.1, 0.2], 0.2, 0.2, 0.01)
    with pytest.raises(ValueError, match="missing for \\[11\\] views"):
        StrangerModel({k: exponential(k) for k in range(1, MAX_VIEWS)})


def test_a_gallerys_fpir_combines_its_subjects_as_independent_chances(model):
    score = 0.93
    one = model.rate(score, 1)
    assert model.fpir(score, {1: 1}) == pytest.approx(one)
    assert model.fpir(score, {1: 10}) == pytest.approx(1 - (1 - one) ** 10)
    mixed = model.fpir(score, {1: 3, 11: 2})
    assert mixed == pytest.approx(1 - (1 - one) ** 3 * (1 - model.rate(score, 11)) ** 2)
    assert model.fpir(score, {}) == 0.0


def test_the_threshold_keeps_the_promise_and_rises_with_the_gallery(model):
    previous = -1.0
    for subjects in (1, 5, 10, 24, 100):
        threshold = model.threshold(0.01, {11: subjects})
        assert model.fpir(threshold, {11: subjects}) <= 0.01
        assert model.fpir(threshold - 1e-5, {11: subjects}) > 0.01  # the lowest such score
        assert threshold > previous
        previous = threshold
    # this toy's strangers reach 1.0 too often for 1,000 subjects at 1 %: nobody is named
    assert model.threshold(0.01, {11: 1000}) == UNREACHABLE
    assert model.threshold(0.01, {1: 24}) < model.threshold(0.01, {11: 24})  # fewer chances
    assert model.threshold(0.001, {1: 24}) > model.threshold(0.01, {1: 24})
    assert np.float32(model.threshold(0.01, {3: 7})) == model.threshold(0.01, {3: 7})
    with pytest.raises(ValueError, match="FPIR"):
        model.threshold(0.0, {1: 1})


def test_views_count_distinct_labels_and_every_unlabelled_sample():
    assert effective_views(["090", "090", "000"]) == 2
    assert effective_views([None, None, "090"]) == 3
    assert effective_views([]) == 1
    assert effective_views([str(v) for v in range(20)]) == MAX_VIEWS
    assert composition_of([1, 1, 11, 30, 0]) == {1: 3, 11: 2}
