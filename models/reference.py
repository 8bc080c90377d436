"""Reference clips: synthetic walkers that every engine of a model must embed as the fp32 model
did at export (``models.proof``). numpy only.

The clips are drawn here, not cut from a dataset (CASIA-B may not be redistributed): a stick
figure with a head, a torso and jointed arms and legs swinging through a 16-frame gait cycle, at
the input contract's size, in black and white. They exercise the same operators and value
ranges as real silhouettes: the int8 variant whose uint8 × int8 products saturated on CPUs
without VNNI (issue 25) disagreed with fp32 on them as on real clips (0.83–0.94 against
0.87–0.95 mean part cosine), and the fixed variant agrees on both (≥ 0.999).

A card stores the clips themselves (bits, base64) beside their expected embeddings, so a card
stays checkable whatever later versions of this module draw.
"""

from __future__ import annotations

import base64

import numpy as np

from models.contract import FRAME_HEIGHT, MODEL_WIDTH

CYCLE_FRAMES = 16
REFERENCE_FRAMES = 24


def _near_segment(
    rows: np.ndarray, cols: np.ndarray, start: tuple, end: tuple, radius: float
) -> np.ndarray:
    """Pixels within ``radius`` of the segment start → end (points as (row, col))."""
    (r0, c0), (r1, c1) = start, end
    dr, dc = r1 - r0, c1 - c0
    length2 = max(dr * dr + dc * dc, 1e-9)
    t = np.clip(((rows - r0) * dr + (cols - c0) * dc) / length2, 0.0, 1.0)
    off_r, off_c = rows - (r0 + t * dr), cols - (c0 + t * dc)
    return off_r * off_r + off_c * off_c <= radius * radius


def walker(frames: int, phase: float, stride: float, build: float, facing: int) -> np.ndarray:
    """One synthetic walk. Out: uint8 [frames, 64, 44], 0 or 255.

    phase: where in the gait cycle it starts (radians); stride: leg swing (radians); build:
    limb thickness (1 is average); facing: +1 walks right, -1 left.
    """
    rows, cols = np.mgrid[0:FRAME_HEIGHT, 0:MODEL_WIDTH].astype(np.float64) + 0.5
    centre = MODEL_WIDTH / 2
    neck, hip, shoulder = (12.0, centre), (34.0, centre), (15.0, centre)
    clip = np.zeros((frames, FRAME_HEIGHT, MODEL_WIDTH), np.uint8)
    for f in range(frames):
        angle = 2 * np.pi * f / CYCLE_FRAMES + phase
        body = (rows - 6) ** 2 / 36 + (cols - centre) ** 2 / (16 * build) <= 1  # head
        body |= _near_segment(rows, cols, neck, hip, 5.5 * build)  # torso
        for side in (1, -1):
            swing = side * stride * np.sin(angle)
            bend = max(0.0, side * np.sin(angle + 0.6)) * 0.5  # the knee bends on the way forward
            knee = (hip[0] + 14 * np.cos(swing), hip[1] + facing * 14 * np.sin(swing))
            foot = (
                knee[0] + 15 * np.cos(swing - bend),
                knee[1] + facing * 15 * np.sin(swing - bend),
            )
            arm = -0.8 * swing  # arms swing against the legs
            elbow = (shoulder[0] + 11 * np.cos(arm), shoulder[1] + facing * 11 * np.sin(arm))
            hand = (elbow[0] + 10 * np.cos(arm / 2), elbow[1] + facing * 10 * np.sin(arm / 2))
            body |= _near_segment(rows, cols, hip, knee, 3.2 * build)
            body |= _near_segment(rows, cols, knee, foot, 2.6 * build)
            body |= _near_segment(rows, cols, shoulder, elbow, 2.2 * build)
            body |= _near_segment(rows, cols, elbow, hand, 1.9 * build)
        clip[f] = body * np.uint8(255)
    return clip


def reference_clips(frames: int = REFERENCE_FRAMES) -> np.ndarray:
    """Four walkers of different phase, stride, build and direction: uint8 [4, frames, 64, 44]."""
    walkers = [
        (0.0, 0.45, 1.0, 1),
        (1.3, 0.35, 1.2, -1),
        (2.1, 0.55, 0.9, 1),
        (0.7, 0.15, 1.1, 1),  # short steps, nearly standing
    ]
    return np.stack([walker(frames, *w) for w in walkers])


def encode_clips(clips: np.ndarray) -> str:
    """uint8 [n, T, 64, 44] of 0/255 → base64 of their bits (row-major)."""
    if clips.dtype != np.uint8 or not np.isin(clips, (0, 255)).all():
        raise ValueError("reference clips must be uint8 silhouettes of 0 and 255 only")
    return base64.b64encode(np.packbits(clips == 255).tobytes()).decode("ascii")


def decode_clips(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`encode_clips`. Out: uint8 ``shape``, 0 or 255."""
    count = int(np.prod(shape))
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8), count=count)
    return (bits.reshape(shape) * np.uint8(255)).astype(np.uint8)


def encode_array(values: np.ndarray) -> str:
    """float32 array → base64 of its little-endian bytes."""
    return base64.b64encode(np.ascontiguousarray(values, "<f4").tobytes()).decode("ascii")


def decode_array(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`encode_array`. Out: float32 ``shape``."""
    return np.frombuffer(base64.b64decode(text), "<f4").reshape(shape).astype(np.float32)
