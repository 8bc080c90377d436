"""training.data.subjects: partitions and ranges."""

from __future__ import annotations

import pytest

from training.data.subjects import SubjectSpecError, parse_subjects


def ids(first: int, last: int) -> list[str]:
    return [f"{n:03d}" for n in range(first, last + 1)]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("LT-train", ids(1, 74)),
        ("lt-test", ids(75, 124)),
        ("MT-train", ids(1, 62)),
        ("MT-test", ids(63, 124)),
        ("ST-train", ids(1, 24)),
        ("ST-test", ids(25, 124)),
        ("063-074", ids(63, 74)),
        ("63-74", ids(63, 74)),
        ("005", ["005"]),
        ("001-003, 002, 010", ["001", "002", "003", "010"]),
        ("all", ids(1, 124)),
    ],
)
def test_selections(spec, expected):
    assert parse_subjects(spec) == expected


def test_train_and_test_halves_are_disjoint_and_cover_casia_b():
    for name in ("LT", "MT", "ST"):
        train, test = parse_subjects(f"{name}-train"), parse_subjects(f"{name}-test")
        assert not set(train) & set(test)
        assert sorted(train + test) == ids(1, 124)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("LT", "LT-train or -test"),
        ("074-063", "empty"),
        ("000", "below 1"),
        ("abc", "cannot read"),
        ("1-2-3", "cannot read"),
    ],
)
def test_bad_selections_say_what_is_wrong(spec, message):
    with pytest.raises(SubjectSpecError, match=message):
        parse_subjects(spec)
