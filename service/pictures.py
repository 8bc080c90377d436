"""Pictures of clips, rendered on the server from the normalised silhouettes (numpy + OpenCV).

- the **GEI** (gait energy image): the mean of the aligned frames, ``uint8 [64, 44]`` — at a
  glance, whether a clip holds a walking person and why two clips match;
- the **strip**: up to 12 frames, evenly spaced over the clip, side by side.

``PictureCache`` keeps rendered PNGs of stored samples by sample id (bounded, least recently used
first out); the gallery forgets a sample's pictures when the sample is deleted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Literal

import cv2
import numpy as np

Kind = Literal["gei", "strip"]
STRIP_FRAMES = 12
STRIP_GAP = 2  # pixels between frames


def gei(silhouettes: np.ndarray) -> np.ndarray:
    """In silhouettes: uint8 [T, 64, 44]. Out uint8 [64, 44]: the mean frame."""
    return np.rint(silhouettes.astype(np.float32).mean(axis=0)).astype(np.uint8)


def strip(silhouettes: np.ndarray, frames: int = STRIP_FRAMES) -> np.ndarray:
    """In silhouettes: uint8 [T, 64, 44]. Out uint8 [64, k*44 + (k-1)*gap], k = min(T, frames)."""
    count = min(len(silhouettes), frames)
    picks = np.linspace(0, len(silhouettes) - 1, count).round().astype(int)
    height, width = silhouettes.shape[1:]
    out = np.full((height, count * (width + STRIP_GAP) - STRIP_GAP), 96, np.uint8)
    for slot, index in enumerate(picks):
        left = slot * (width + STRIP_GAP)
        out[:, left : left + width] = silhouettes[index]
    return out


def png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:  # cannot happen for a 2-D uint8 array
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


RENDER: dict[str, Callable[[np.ndarray], np.ndarray]] = {"gei": gei, "strip": strip}


def render(silhouettes: np.ndarray, kind: Kind) -> bytes:
    return png(RENDER[kind](silhouettes))


class PictureCache:
    """Rendered PNGs by (sample id, kind); at most ``capacity`` of them."""

    def __init__(self, capacity: int = 2048):
        self.capacity = capacity
        self._items: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sample_id: int, kind: Kind, load: Callable[[], np.ndarray]) -> bytes:
        key = (sample_id, kind)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        picture = render(load(), kind)
        with self._lock:
            self._items[key] = picture
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return picture

    def forget(self, sample_ids: Iterable[int]) -> None:
        with self._lock:
            for sample_id in sample_ids:
                for kind in RENDER:
                    self._items.pop((sample_id, kind), None)

    def __len__(self) -> int:
        return len(self._items)
