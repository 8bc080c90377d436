"""training.data.sampling: P×K batches, rank shares, frame windows."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.cache import SilhouetteCache
from training.data.casia_b import SequenceKey
from training.data.sampling import PKSampler, batch_rng, frame_windows

SUBJECTS = np.array([f"{s:03d}" for s in range(1, 7) for _ in range(5)])  # 6 subjects × 5 seqs


def test_batch_is_p_subjects_times_k_sequences():
    sampler = PKSampler(SUBJECTS, subjects_per_batch=4, sequences_per_subject=3, seed=0)
    indices, labels = sampler.batch(0)
    assert len(indices) == len(labels) == 12
    assert len(set(labels)) == 4
    assert (np.bincount(labels, minlength=6)[np.unique(labels)] == 3).all()
    np.testing.assert_array_equal(sampler.subject_ids[labels], SUBJECTS[indices])
    for label in np.unique(labels):
        assert len(set(indices[labels == label])) == 3  # no repeats when a subject has enough


def test_batches_depend_only_on_seed_and_iteration():
    a = PKSampler(SUBJECTS, 4, 3, seed=5)
    b = PKSampler(SUBJECTS, 4, 3, seed=5)
    np.testing.assert_array_equal(a.batch(17)[0], b.batch(17)[0])
    assert not np.array_equal(a.batch(17)[0], a.batch(18)[0])
    assert not np.array_equal(a.batch(17)[0], PKSampler(SUBJECTS, 4, 3, seed=6).batch(17)[0])


def test_ranks_split_the_global_batch_by_subject():
    whole = PKSampler(SUBJECTS, 4, 3, seed=1).batch(3)
    shares = [PKSampler(SUBJECTS, 4, 3, seed=1, rank=r, world=2).batch(3) for r in range(2)]
    assert not set(shares[0][1]) & set(shares[1][1])
    together = np.concatenate([shares[0][0], shares[1][0]])
    assert sorted(together) == sorted(whole[0])


def test_bad_batch_shapes_are_rejected():
    with pytest.raises(ValueError, match="only 6"):
        PKSampler(SUBJECTS, 8, 3)
    with pytest.raises(ValueError, match="divide"):
        PKSampler(SUBJECTS, 3, 3, world=2)


def synthetic_cache(lengths):
    frames, starts, total = [], [], 0
    for length in lengths:
        starts.append(total)
        # every frame holds its own index in the sequence, so windows can be read back
        frames.append(
            np.broadcast_to(np.arange(length, dtype=np.uint8)[:, None, None], (length, 64, 44))
        )
        total += length
    keys = [SequenceKey("001", "nm-01", f"{i:03d}") for i in range(len(lengths))]
    return SilhouetteCache(
        np.concatenate(frames), keys, np.array(starts), np.array(lengths), skipped=[]
    )


def test_ordered_windows_are_consecutive_and_short_sequences_wrap():
    cache = synthetic_cache([50, 8])
    windows = frame_windows(cache, np.array([0, 1, 0]), 10, ordered=True, rng=batch_rng(0, 0))
    assert windows.shape == (3, 10, 64, 44)
    index = windows[:, :, 0, 0].astype(int)
    assert (np.diff(index[0]) == 1).all()
    np.testing.assert_array_equal(index[1], [0, 1, 2, 3, 4, 5, 6, 7, 0, 1])


def test_unordered_windows_stay_inside_their_sequence():
    cache = synthetic_cache([50, 8])
    windows = frame_windows(cache, np.array([1] * 20), 10, ordered=False, rng=batch_rng(0, 0))
    index = windows[:, :, 0, 0]
    assert index.max() < 8
    assert len(np.unique(index)) == 8
