"""training.augment: sequence-level, reproducible, and off when its probabilities are zero."""

from __future__ import annotations

import torch

from training.augment import augment_sequences
from training.config import AugmentSection


def clip_batch():
    torch.manual_seed(0)
    return (torch.rand(6, 5, 64, 44) > 0.7).float()


def test_zero_probabilities_leave_the_batch_alone():
    x = clip_batch()
    off = AugmentSection(flip=0, affine=0, erase=0)
    assert torch.equal(augment_sequences(x, off, torch.Generator().manual_seed(0)), x)


def test_flip_always():
    x = clip_batch()
    flip = AugmentSection(flip=1, affine=0, erase=0)
    assert torch.equal(augment_sequences(x, flip, torch.Generator().manual_seed(0)), x.flip(-1))


def test_same_generator_state_same_result_and_frames_share_the_transform():
    x = torch.zeros(4, 3, 64, 44)
    x[:, :, 20:40, 15:30] = 1  # identical frames within each sequence
    settings = AugmentSection(flip=0.5, affine=1, erase=1)
    a = augment_sequences(x, settings, torch.Generator().manual_seed(3))
    b = augment_sequences(x, settings, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, x)
    for sequence in a:
        assert torch.equal(sequence[0], sequence[1])
        assert torch.equal(sequence[0], sequence[2])
    assert a.shape == x.shape
    assert a.min() >= 0
    assert a.max() <= 1
