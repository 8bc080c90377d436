"""CASIA-B in OpenGait's pkl layout: finding, reading and counting sequences.

Layout: ``ROOT/<subject>/<condition>/<view>/<view>.pkl``, e.g. ``001/nm-01/090/090.pkl``; each pkl
holds a pickled ``uint8 [frames, 64, 64]`` array (aligned frames, see ``models.silhouette``), read
here with the restricted unpickler. Short sequences and missing folders are reported, never fatal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.contract import ALIGNED_WIDTH, FRAME_HEIGHT, MODEL_WIDTH
from training.data.safe_pickle import load_array

CONDITIONS: tuple[str, ...] = (
    *(f"nm-{i:02d}" for i in range(1, 7)),
    "bg-01",
    "bg-02",
    "cl-01",
    "cl-02",
)
"""The ten walking sequences per subject and view: normal, carrying a bag, wearing a coat."""

VIEWS: tuple[str, ...] = tuple(f"{angle:03d}" for angle in range(0, 181, 18))
"""The eleven camera views, 0° to 180° in 18° steps."""

SHORT_SEQUENCE = 15
"""Sequences with fewer frames than this are reported as short (OpenGait warns below 15)."""

_CONDITION = re.compile(r"^[a-z]{2}-\d{2}$")


class SequenceFormatError(ValueError):
    """A sequence file that does not hold ``uint8 [frames, 64, 64|44]`` frames."""


@dataclass(frozen=True, order=True)
class SequenceKey:
    """Which walk a sequence is: subject ``'001'``, condition ``'nm-01'``, view ``'090'``."""

    subject: str
    condition: str
    view: str

    @property
    def walk_type(self) -> str:
        """``'nm'``, ``'bg'`` or ``'cl'``."""
        return self.condition.split("-", 1)[0]

    def __str__(self) -> str:
        return f"{self.subject} {self.condition} {self.view}"


@dataclass(frozen=True)
class SequenceFile:
    key: SequenceKey
    path: Path


@dataclass
class TreeProblem:
    """Something in a tree that could not be used; reported, not raised."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class SequenceListing:
    """What :func:`find_sequences` found: usable files and the folders it had to skip."""

    files: list[SequenceFile] = field(default_factory=list)
    problems: list[TreeProblem] = field(default_factory=list)


def _sorted_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir())


def find_sequences(
    root: str | Path,
    subjects: Iterable[str] | None = None,
    conditions: Iterable[str] | None = None,
) -> SequenceListing:
    """List the sequence files of a pkl tree, optionally only some subjects and conditions.

    A view folder with no ``.pkl`` or with several is reported in ``problems`` and skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no CASIA-B tree at {root}")
    wanted_subjects = set(subjects) if subjects is not None else None
    wanted_conditions = set(conditions) if conditions is not None else None
    listing = SequenceListing()
    for subject_dir in _sorted_dirs(root):
        if wanted_subjects is not None and subject_dir.name not in wanted_subjects:
            continue
        for condition_dir in _sorted_dirs(subject_dir):
            if not _CONDITION.match(condition_dir.name):
                listing.problems.append(TreeProblem(condition_dir, "not a condition folder"))
                continue
            if wanted_conditions is not None and condition_dir.name not in wanted_conditions:
                continue
            for view_dir in _sorted_dirs(condition_dir):
                pkls = sorted(view_dir.glob("*.pkl"))
                preferred = view_dir / f"{view_dir.name}.pkl"
                if preferred in pkls:
                    pkls = [preferred]
                if len(pkls) != 1:
                    found = "no .pkl file" if not pkls else f"{len(pkls)} .pkl files"
                    listing.problems.append(TreeProblem(view_dir, found))
                    continue
                key = SequenceKey(subject_dir.name, condition_dir.name, view_dir.name)
                listing.files.append(SequenceFile(key, pkls[0]))
    return listing


def read_sequence(path: str | Path) -> np.ndarray:
    """One pkl → ``uint8 [frames, 64, 64]`` (or ``[frames, 64, 44]`` if stored already cut).

    Raises :class:`SequenceFormatError` for any other array, and the restricted unpickler's
    ``UnsafePickleError`` for a pickle that is not a plain array.
    """
    frames = load_array(path)
    if (
        frames.ndim != 3
        or frames.shape[1] != FRAME_HEIGHT
        or frames.shape[2] not in (ALIGNED_WIDTH, MODEL_WIDTH)
    ):
        raise SequenceFormatError(f"{path}: expected [frames, 64, 64] frames, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise SequenceFormatError(f"{path}: expected uint8 frames, got {frames.dtype}")
    return frames


@dataclass
class TreeStats:
    """What ``gaitlab data stats`` reports about a tree."""

    root: str
    subjects: int
    sequences: int
    frames: int
    short: list[tuple[SequenceKey, int]]
    missing: list[SequenceKey]
    problems: list[TreeProblem]
    min_frames: int = SHORT_SEQUENCE

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "subjects": self.subjects,
            "sequences": self.sequences,
            "frames": self.frames,
            "min_frames": self.min_frames,
            "short": [{**_key_dict(key), "frames": n} for key, n in self.short],
            "missing": [_key_dict(key) for key in self.missing],
            "problems": [{"path": str(p.path), "message": p.message} for p in self.problems],
        }


def _key_dict(key: SequenceKey) -> dict[str, str]:
    return {"subject": key.subject, "condition": key.condition, "view": key.view}


def tree_stats(
    root: str | Path,
    subjects: Iterable[str] | None = None,
    min_frames: int = SHORT_SEQUENCE,
    progress: bool = True,
) -> TreeStats:
    """Count subjects, sequences and frames; list short, missing and unreadable sequences.

    A sequence is *missing* when a subject that is present (or was asked for) has no usable
    sequence for one of CASIA-B's 110 condition/view pairs; where a folder exists but could not
    be used, ``problems`` says why. Every file is read, so corrupt files show up too.
    """
    listing = find_sequences(root, subjects)
    problems = list(listing.problems)
    short: list[tuple[SequenceKey, int]] = []
    present: set[SequenceKey] = set()
    frames = 0
    for item in tqdm(listing.files, desc="reading", unit="seq", disable=not progress):
        try:
            count = len(read_sequence(item.path))
        except Exception as error:  # reported per file: one bad file must not stop the count
            problems.append(TreeProblem(item.path, f"unreadable: {error}"))
            continue
        present.add(item.key)
        frames += count
        if count < min_frames:
            short.append((item.key, count))
    subject_ids = set(subjects) if subjects is not None else {f.key.subject for f in listing.files}
    expected = {SequenceKey(s, c, v) for s in subject_ids for c in CONDITIONS for v in VIEWS}
    return TreeStats(
        root=str(root),
        subjects=len({key.subject for key in present}),
        sequences=len(present),
        frames=frames,
        short=sorted(short),
        missing=sorted(expected - present),
        problems=problems,
        min_frames=min_frames,
    )
