"""Silhouette normalisation: raw binary masks → aligned 64×64 frames → 64×44 model frames.

This is the one function that puts data in front of a model: CASIA-B pretreatment, training, and
the service's uploads all go through it, so every model sees frames in the same form. numpy and
OpenCV only (no torch).

Algorithm for one raw mask ``[H, W]`` of any size (OpenGait's CASIA-B pretreatment):

1. Values: ``bool`` and 0/1 masks are scaled to 0/255; other values must lie in 0–255.
2. Empty frames are dropped: a frame whose pixel values sum to at most ``EMPTY_MASS`` (10,000, i.e.
   fewer than about 40 foreground pixels) yields ``None``.
3. Crop to the rows that hold the person: from the first to the last row with foreground.
4. Resize the crop (full width) with bicubic interpolation to height 64, keeping the aspect
   ratio: width ``int(64 * (W / h))``.
5. The person's centre column is the median of silhouette mass: the first column at which the
   cumulative column mass exceeds half the total.
6. Take the 64-wide window centred there (columns ``centre - 32 … centre + 31``), padding with
   zeros where it runs past the image. The result is the aligned ``uint8 [64, 64]`` frame that
   OpenGait pkl trees store.

Model frames cut ``SIDE_CUT`` (10) columns from each side of the aligned frame: ``[64, 44]``.

Where OpenGait's code is buggy this module departs from it, without changing the output for clean
masks (one connected silhouette, centre not at column 0):

- OpenGait drops a frame whose centre column is 0 (``if not x_center``); here column 0 is a
  valid centre.
- OpenGait's row crop spans every non-zero pixel, so one stray pixel far above the head or below
  the feet stretches the crop and shrinks the person. Here the row extent is taken from the
  connected components that matter: components smaller than ``SPECK_FRACTION`` (1 %) of the
  largest are ignored when choosing the rows (they are not erased; pixels inside the chosen rows
  stay as they are).
- A crop narrow enough for ``int(64 * W / h)`` to round to 0 columns crashed OpenCV; here the
  width is at least 1.

Input that is already normalised passes through unchanged: a ``[64, 64]`` frame is taken to be
aligned and a ``[64, 44]`` frame to be a model frame (their values are kept as they are; they are
still dropped when empty by the rule above).
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from models.contract import (
    ALIGNED_SHAPE,
    ALIGNED_WIDTH,
    FOREGROUND,
    FRAME_HEIGHT,
    MODEL_SHAPE,
    MODEL_WIDTH,
    SIDE_CUT,
)

EMPTY_MASS = 10_000
"""A frame whose values (0–255 scale) sum to at most this is empty (OpenGait's rule)."""

SPECK_FRACTION = 0.01
"""Components smaller than this fraction of the largest one do not set the crop rows."""

__all__ = [
    "EMPTY_MASS",
    "SPECK_FRACTION",
    "SilhouetteError",
    "align_clip",
    "align_silhouette",
    "as_mask",
    "cut_to_model",
    "normalise_clip",
    "normalise_silhouette",
]


class SilhouetteError(ValueError):
    """An array that cannot be read as a silhouette mask (wrong rank, range or type)."""


def as_mask(frame: np.ndarray) -> np.ndarray:
    """Check one frame and return it as ``uint8 [H, W]`` on the 0–255 scale.

    ``bool`` masks and masks whose values are only 0 and 1 are scaled to 0/255. Integer and float
    frames must hold values in 0–255 (floats are rounded). Anything else raises
    :class:`SilhouetteError`.
    """
    a = np.asarray(frame)
    if a.ndim != 2:
        raise SilhouetteError(
            f"a silhouette frame must be 2-D (height, width); got shape {a.shape}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise SilhouetteError(f"a silhouette frame must not be empty; got shape {a.shape}")
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * np.uint8(FOREGROUND)
    if a.dtype.kind not in "uif":
        raise SilhouetteError(f"a silhouette frame must be numeric or bool; got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise SilhouetteError("a silhouette frame must not contain NaN or infinity")
    low, high = a.min(), a.max()
    if low < 0 or high > FOREGROUND:
        raise SilhouetteError(f"silhouette values must lie in 0–255; got {low}–{high}")
    if high <= 1:
        a = a * FOREGROUND
    if a.dtype != np.uint8:
        a = np.rint(a).astype(np.uint8) if a.dtype.kind == "f" else a.astype(np.uint8)
    return np.ascontiguousarray(a)


def _is_empty(mask: np.ndarray) -> bool:
    return int(mask.sum(dtype=np.int64)) <= EMPTY_MASS


def _person_rows(mask: np.ndarray) -> tuple[int, int]:
    """First and last row (inclusive) of the components that are not specks.

    In  mask: uint8 [H, W], not empty.
    """
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        (mask > 0).astype(np.uint8), connectivity=8
    )
    stats = stats[1:count]  # row 0 is the background
    areas = stats[:, cv2.CC_STAT_AREA]
    kept = stats[areas >= SPECK_FRACTION * areas.max()]
    tops = kept[:, cv2.CC_STAT_TOP]
    bottoms = tops + kept[:, cv2.CC_STAT_HEIGHT] - 1
    return int(tops.min()), int(bottoms.max())


def _pad_model_frame(mask: np.ndarray) -> np.ndarray:
    return np.pad(mask, ((0, 0), (SIDE_CUT, SIDE_CUT)))


def align_silhouette(frame: np.ndarray) -> np.ndarray | None:
    """One raw mask → the aligned frame, or ``None`` when the frame is empty.

    In  frame: [H, W] bool, 0/1 or 0–255 values, any size.
    Out uint8 [64, 64] (see the module docstring for the algorithm). ``[64, 64]`` input is
        returned unchanged; ``[64, 44]`` input gets its 10 cut columns back as zeros.
    """
    mask = as_mask(frame)
    if _is_empty(mask):
        return None
    if mask.shape == ALIGNED_SHAPE:
        return mask
    if mask.shape == MODEL_SHAPE:
        return _pad_model_frame(mask)

    top, bottom = _person_rows(mask)
    person = mask[top : bottom + 1]
    height, width = person.shape
    resized_width = max(1, int(FRAME_HEIGHT * (width / height)))
    resized = cv2.resize(
        person, (resized_width, FRAME_HEIGHT), interpolation=cv2.INTER_CUBIC
    )  # [64, resized_width]

    column_mass = resized.sum(axis=0, dtype=np.int64)
    total = int(column_mass.sum())
    if total == 0:  # only possible for degenerate crops; nothing left to centre on
        return None
    centre = int(np.argmax(np.cumsum(column_mass) > total / 2))

    half = ALIGNED_WIDTH // 2
    padded = np.pad(resized, ((0, 0), (half, half)))  # centre moves to centre + half
    return np.ascontiguousarray(padded[:, centre : centre + ALIGNED_WIDTH])


def cut_to_model(aligned: np.ndarray) -> np.ndarray:
    """Aligned frames → model frames by cutting ``SIDE_CUT`` columns from each side.

    In  aligned: [..., 64, 64]
    Out [..., 64, 44] (a view; copy it if you need it contiguous)
    """
    if aligned.shape[-2:] != ALIGNED_SHAPE:
        raise SilhouetteError(f"expected aligned frames [..., 64, 64]; got shape {aligned.shape}")
    return aligned[..., SIDE_CUT : ALIGNED_WIDTH - SIDE_CUT]


def normalise_silhouette(frame: np.ndarray) -> np.ndarray | None:
    """One raw mask → one model frame ``uint8 [64, 44]``, or ``None`` when empty."""
    aligned = align_silhouette(frame)
    return None if aligned is None else np.ascontiguousarray(cut_to_model(aligned))


def _stack(frames: Iterable[np.ndarray], width: int, fn) -> np.ndarray:
    kept = [out for out in map(fn, frames) if out is not None]
    if not kept:
        return np.empty((0, FRAME_HEIGHT, width), dtype=np.uint8)
    return np.stack(kept)


def align_clip(frames: Iterable[np.ndarray]) -> np.ndarray:
    """A clip of raw masks → aligned frames, empty frames dropped, order kept.

    In  frames: [T, H, W] array or an iterable of [H_i, W_i] masks
    Out uint8 [n, 64, 64], n <= T (n may be 0)
    """
    return _stack(frames, ALIGNED_WIDTH, align_silhouette)


def normalise_clip(frames: Iterable[np.ndarray]) -> np.ndarray:
    """A clip of raw masks → model frames, empty frames dropped, order kept.

    In  frames: [T, H, W] array or an iterable of [H_i, W_i] masks
    Out uint8 [n, 64, 44], n <= T (n may be 0)
    """
    already_normalised = isinstance(frames, np.ndarray) and frames.ndim == 3 and len(frames)
    if already_normalised and frames.shape[1:] in (ALIGNED_SHAPE, MODEL_SHAPE):
        return _normalised_clip(frames)  # the whole array at once, no loop
    return _stack(frames, MODEL_WIDTH, normalise_silhouette)


def _normalised_clip(clip: np.ndarray) -> np.ndarray:
    """``normalise_clip`` of a clip already aligned [T, 64, 64] or cut [T, 64, 44], for the
    whole array at once: the same checks, scaling and empty-frame rule as frame by frame."""
    if clip.dtype == np.bool_:
        masks = clip.astype(np.uint8) * np.uint8(FOREGROUND)
    else:
        if clip.dtype.kind not in "uif":
            raise SilhouetteError(
                f"a silhouette frame must be numeric or bool; got dtype {clip.dtype}"
            )
        if clip.dtype.kind == "f" and not np.isfinite(clip).all():
            raise SilhouetteError("a silhouette frame must not contain NaN or infinity")
        low, high = clip.min(), clip.max()
        if low < 0 or high > FOREGROUND:
            raise SilhouetteError(f"silhouette values must lie in 0–255; got {low}–{high}")
        masks = clip
        binary = clip.max(axis=(1, 2)) <= 1  # 0/1 frames are scaled, each on its own
        if binary.any():
            masks = masks.astype(np.float64 if clip.dtype.kind == "f" else np.int64)
            masks[binary] *= FOREGROUND
        if masks.dtype != np.uint8:
            masks = np.rint(masks) if masks.dtype.kind == "f" else masks
            masks = masks.astype(np.uint8)
    masks = masks[masks.sum(axis=(1, 2), dtype=np.int64) > EMPTY_MASS]
    if masks.shape[1:] == ALIGNED_SHAPE:
        masks = cut_to_model(masks)
    return np.ascontiguousarray(masks)
