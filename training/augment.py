"""Sequence-level augmentation on a batch (torch): one random draw per sequence, applied to every
frame of it, so the motion within a sequence stays consistent.

In/Out x: [n, s, h, w] float in [0, 1]
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from training.config import AugmentSection


def _chance(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def _uniform(n: int, bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * 2 - 1) * bound


def augment_sequences(
    x: torch.Tensor, settings: AugmentSection, generator: torch.Generator
) -> torch.Tensor:
    """Random flip, affine warp and erasing, each with its probability from ``settings``.

    Random numbers come from ``generator`` (CPU), so a run is reproducible wherever it runs.
    """
    n, s, h, w = x.shape
    flip = _chance(n, settings.flip, generator)
    warp = _chance(n, settings.affine, generator)
    erase = _chance(n, settings.erase, generator)
    angle = _uniform(n, math.radians(settings.max_rotation), generator) * warp
    scale = 1 + _uniform(n, settings.max_scale, generator) * warp
    shift = torch.stack([_uniform(n, settings.max_shift, generator) for _ in range(2)], 1) * 2
    shift = shift * warp[:, None]
    box = torch.rand(n, 4, generator=generator)  # erase: top, left, height, width fractions

    if flip.any():
        x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    if warp.any():
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        ).to(device=x.device, dtype=x.dtype)  # [n, 2, 3]
        grid = F.affine_grid(theta, [n, s, h, w], align_corners=False)
        x = torch.where(
            warp.to(x.device)[:, None, None, None],
            F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False),
            x,
        )
    if erase.any():
        heights = (0.1 + 0.3 * box[:, 2]) * h
        widths = (0.1 + 0.3 * box[:, 3]) * w
        tops = box[:, 0] * (h - heights)
        lefts = box[:, 1] * (w - widths)
        rows = torch.arange(h)[None, :, None]
        cols = torch.arange(w)[None, None, :]
        inside = (
            (rows >= tops[:, None, None])
            & (rows < (tops + heights)[:, None, None])
            & (cols >= lefts[:, None, None])
            & (cols < (lefts + widths)[:, None, None])
            & erase[:, None, None]
        )  # [n, h, w]
        x = x.masked_fill(inside.to(x.device)[:, None], 0.0)
    return x
