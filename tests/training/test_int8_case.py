"""training.export.int8_case: when the int8 variant's card says it serves by default on a CPU."""

from __future__ import annotations

from models.card import ValidationResult
from training.export import int8_case


def result(nm: float, cl: float, subjects: str = "051-074", count: int = 24) -> ValidationResult:
    figures = {"NM": nm, "BG": 80.0, "CL": cl}
    return ValidationResult(
        subjects=subjects, subject_count=count, rank1={"euc": figures, "cos": dict(figures)}
    )


def test_within_half_a_point_everywhere_on_24_subjects_makes_the_case():
    case = int8_case(result(90.0, 50.0), result(89.6, 50.5))
    assert case is not None
    assert "051-074 (24 subjects" in case
    assert "NM 89.6/90.0" in case
    assert "CL 50.5/50.0" in case


def test_a_bigger_gap_anywhere_or_too_few_subjects_does_not():
    assert int8_case(result(90.0, 50.0), result(90.0, 49.4)) is None  # CL 0.6 points lower
    assert int8_case(result(90.0, 50.0, "063-074", 12), result(90.0, 50.0, "063-074", 12)) is None
    assert int8_case(result(90.0, 50.0), result(90.0, 50.0, "051-062", 24)) is None  # not alike
