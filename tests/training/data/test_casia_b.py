"""training.data.casia_b: listing, reading and counting a pkl tree."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from training.data.casia_b import (
    CONDITIONS,
    VIEWS,
    SequenceFormatError,
    SequenceKey,
    find_sequences,
    read_sequence,
    tree_stats,
)
from training.data.safe_pickle import UnsafePickleError

pytestmark = pytest.mark.casia


def test_listing_matches_the_manifest(casia_b_tree, manifest):
    listing = find_sequences(casia_b_tree)
    keys = {(f.key.subject, f.key.condition, f.key.view) for f in listing.files}
    expected = {k for k in manifest if k[0] in ("001", "005")}
    assert keys == expected
    assert not listing.problems


def test_read_sequence_returns_aligned_uint8_frames(casia_b_tree, manifest):
    path = casia_b_tree / "001" / "nm-01" / "090" / "090.pkl"
    frames = read_sequence(path)
    assert frames.dtype == np.uint8
    assert frames.shape == (manifest[("001", "nm-01", "090")], 64, 64)
    assert frames.max() == 255
    # aligned: every frame spans all rows (head on row 0, feet on row 63)
    assert (frames[:, 0].max(axis=1) > 0).all()
    assert (frames[:, 63].max(axis=1) > 0).all()


def test_filters_by_subject_and_condition(casia_b_tree):
    listing = find_sequences(casia_b_tree, subjects=["001"], conditions=["cl-01", "cl-02"])
    assert {f.key.condition for f in listing.files} == {"cl-01", "cl-02"}
    assert len(listing.files) == 22


def test_stats_count_frames_and_report_short_and_missing(casia_b_tree, manifest):
    stats = tree_stats(casia_b_tree, progress=False)
    ours = {k: n for k, n in manifest.items() if k[0] in ("001", "005")}
    assert stats.subjects == 2
    assert stats.sequences == len(ours)
    assert stats.frames == sum(ours.values())
    assert stats.short == sorted((SequenceKey(*k), n) for k, n in ours.items() if n < 15)
    assert stats.missing == [SequenceKey("005", c, "000") for c in sorted(CONDITIONS)]
    assert len(stats.short) == 9
    assert stats.to_dict()["missing"][0] == {"subject": "005", "condition": "bg-01", "view": "000"}


def test_stats_for_an_absent_subject_lists_all_its_sequences_missing(casia_b_tree):
    stats = tree_stats(casia_b_tree, subjects=["001", "002"], progress=False)
    assert len(stats.missing) == len(CONDITIONS) * len(VIEWS)
    assert {key.subject for key in stats.missing} == {"002"}


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_problems_are_reported_not_fatal(casia_b_tree, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(casia_b_tree / "001", tree / "001")
    (tree / "001" / "nm-01" / "000" / "000.pkl").write_bytes(b"not a pickle")
    (tree / "001" / "nm-01" / "018" / "018.pkl").write_bytes(pickle.dumps(_Evil()))
    (tree / "001" / "nm-01" / "036" / "036.pkl").write_bytes(pickle.dumps(np.zeros((3, 32, 32))))
    (tree / "001" / "nm-01" / "054" / "054.pkl").unlink()
    (tree / "001" / "notes").mkdir()
    stats = tree_stats(tree, progress=False)
    assert stats.sequences == 110 - 4
    messages = {p.path.name: p.message for p in stats.problems}
    assert "unreadable" in messages["000.pkl"]
    assert "posix.system" in messages["018.pkl"] or "os.system" in messages["018.pkl"]
    assert "[frames, 64, 64]" in messages["036.pkl"]
    assert messages["054"] == "no .pkl file"
    assert messages["notes"] == "not a condition folder"
    assert len(stats.missing) == 4


def test_read_sequence_refuses_unsafe_and_misshapen_files(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(UnsafePickleError):
        read_sequence(evil)
    wrong = tmp_path / "wrong.pkl"
    wrong.write_bytes(pickle.dumps(np.zeros((3, 64, 64), np.float32)))
    with pytest.raises(SequenceFormatError, match="uint8"):
        read_sequence(wrong)


def test_missing_tree_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        find_sequences(tmp_path / "nowhere")
