"""training.data.cache: a partition in memory as uint8 [N, 64, 44]."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from training.data.cache import SilhouetteCache
from training.data.casia_b import read_sequence


@pytest.mark.casia
def test_cache_holds_every_frame_cut_to_model_width(casia_b_tree, manifest):
    cache = SilhouetteCache.load(casia_b_tree, progress=False)
    ours = {k: n for k, n in manifest.items() if k[0] in ("001", "005")}
    assert len(cache) == len(ours)
    assert cache.frames.shape == (sum(ours.values()), 64, 44)
    assert cache.frames.dtype == np.uint8
    assert cache.keys == sorted(cache.keys)
    assert cache.nbytes >= cache.frames.nbytes
    for index in (0, 57, len(cache) - 1):
        key = cache.keys[index]
        original = read_sequence(
            casia_b_tree / key.subject / key.condition / key.view / f"{key.view}.pkl"
        )
        np.testing.assert_array_equal(cache.sequence(index), original[:, :, 10:54])
        assert ours[(key.subject, key.condition, key.view)] == cache.lengths[index]
    assert set(cache.subjects) == {"001", "005"}
    assert len(cache.conditions) == len(cache.views) == len(cache)


@pytest.mark.casia
def test_selection_and_min_frames(casia_b_tree, manifest):
    cache = SilhouetteCache.load(
        casia_b_tree, subjects=["005"], conditions=["bg-01", "bg-02"], min_frames=15, progress=False
    )
    short = [k for k, n in manifest.items() if k[0] == "005" and k[1].startswith("bg") and n < 15]
    present = [k for k in manifest if k[0] == "005" and k[1].startswith("bg")]
    assert len(cache) == len(present) - len(short)
    assert (cache.lengths >= 15).all()
    assert len(cache.skipped) == len(short)
    assert all("< 15" in p.message for p in cache.skipped)


@pytest.mark.casia
def test_unreadable_files_are_skipped_and_reported(casia_b_tree, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(casia_b_tree / "001" / "nm-01", tree / "001" / "nm-01")
    (tree / "001" / "nm-01" / "090" / "090.pkl").write_bytes(b"\x80\x04garbage")
    cache = SilhouetteCache.load(tree, progress=False, workers=2)
    assert len(cache) == 10
    assert [p.path.name for p in cache.skipped] == ["090.pkl"]
    assert np.all(np.diff(cache.starts) == cache.lengths[:-1])


def test_cache_of_a_tree_drawn_in_code(synthetic_training_tree):
    """The same contract where CASIA-B is absent: every sequence, cut to the model's width."""
    files = sorted(synthetic_training_tree.glob("*/*/*/*.pkl"))
    cache = SilhouetteCache.load(synthetic_training_tree, progress=False, workers=2)
    assert len(cache) == len(files)
    assert cache.keys == sorted(cache.keys)
    for index in (0, len(cache) // 2, len(cache) - 1):
        key = cache.keys[index]
        original = read_sequence(
            synthetic_training_tree / key.subject / key.condition / key.view / f"{key.view}.pkl"
        )
        np.testing.assert_array_equal(cache.sequence(index), original[:, :, 10:54])
    picked = SilhouetteCache.load(
        synthetic_training_tree, subjects=["065"], conditions=["nm-01"], progress=False
    )
    assert sorted(picked.lengths) == [30, 30, 130]  # the long sequence is kept whole
