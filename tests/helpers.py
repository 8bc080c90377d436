"""Helpers shared by tests: real frames from a pkl tree, raw canvases, overlap measures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from training.data.casia_b import find_sequences, read_sequence

RAW_HEIGHT, RAW_WIDTH = 240, 320  # raw CASIA-B frames


def real_aligned_frames(
    tree: Path, count: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """``count`` real aligned frames, uint8 [count, 64, 64], drawn across sequences of ``tree``."""
    rng = rng or np.random.default_rng(0)
    files = find_sequences(tree).files
    picks = rng.choice(len(files), size=count, replace=len(files) < count)
    frames = []
    for index in picks:
        sequence = read_sequence(files[index].path)
        frames.append(sequence[rng.integers(len(sequence))])
    return np.stack(frames)


def paste_into_canvas(aligned: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An aligned frame as a raw CASIA-B mask: scaled by 1.5–3.5, binarised to 0/255 and pasted
    at a random position into a 240×320 canvas (the whole frame fits)."""
    size = round(64 * rng.uniform(1.5, 3.5))
    big = cv2.resize(aligned, (size, size), interpolation=cv2.INTER_LINEAR)
    binary = np.where(big > 127, 255, 0).astype(np.uint8)
    canvas = np.zeros((RAW_HEIGHT, RAW_WIDTH), np.uint8)
    top = rng.integers(0, RAW_HEIGHT - size + 1)
    left = rng.integers(0, RAW_WIDTH - size + 1)
    canvas[top : top + size, left : left + size] = binary
    return canvas


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of the foregrounds (values > 127) of two frames."""
    fa, fb = a > 127, b > 127
    union = np.logical_or(fa, fb).sum()
    return float(np.logical_and(fa, fb).sum() / union) if union else 1.0
