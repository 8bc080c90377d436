"""Subject selections for CASIA-B: the standard partitions and explicit ranges.

A selection is a comma-separated list of terms, each one of

- a standard partition half: ``LT-train`` (001–074), ``LT-test`` (075–124), ``MT-train`` (001–062),
  ``MT-test`` (063–124), ``ST-train`` (001–024), ``ST-test`` (025–124); case does not matter;
- ``all`` (001–124);
- one subject, ``063``, or an inclusive range, ``063-074``.

Subjects are returned as CASIA-B's zero-padded three-digit ids, sorted, without duplicates.
"""

from __future__ import annotations

import re

CASIA_B_SUBJECTS = 124

PARTITIONS: dict[str, tuple[range, range]] = {
    # name: (train subjects, test subjects), as 1-based inclusive numbers
    "LT": (range(1, 75), range(75, 125)),
    "MT": (range(1, 63), range(63, 125)),
    "ST": (range(1, 25), range(25, 125)),
}

_RANGE = re.compile(r"^(\d{1,3})(?:-(\d{1,3}))?$")


class SubjectSpecError(ValueError):
    """A subject selection that cannot be parsed."""


def subject_id(number: int) -> str:
    """1 → ``'001'``."""
    return f"{number:03d}"


def _term_numbers(term: str) -> range:
    lowered = term.lower()
    if lowered == "all":
        return range(1, CASIA_B_SUBJECTS + 1)
    name, _, half = lowered.partition("-")
    if name.upper() in PARTITIONS and half in ("train", "test"):
        train, test = PARTITIONS[name.upper()]
        return train if half == "train" else test
    if name.upper() in PARTITIONS:
        raise SubjectSpecError(f"say which half of {name.upper()}: {name.upper()}-train or -test")
    match = _RANGE.match(term)
    if not match:
        raise SubjectSpecError(
            f"cannot read subject term {term!r}: use e.g. 063, 063-074, LT-train, MT-test or all"
        )
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if first < 1 or last < first:
        raise SubjectSpecError(f"subject range {term!r} is empty or starts below 1")
    return range(first, last + 1)


def parse_subjects(spec: str) -> list[str]:
    """``"001-003,LT-test"`` → ``['001', '002', '003', '075', …, '124']``."""
    terms = [t.strip() for t in spec.split(",") if t.strip()]
    if not terms:
        raise SubjectSpecError("empty subject selection")
    numbers: set[int] = set()
    for term in terms:
        numbers.update(_term_numbers(term))
    return [subject_id(n) for n in sorted(numbers)]
