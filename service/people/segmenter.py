"""Cut one person out of a frame: BlazePose's landmark model (``pose_landmark_full.tflite``).

Given a region of interest around one person (a square centred on the hips, 2.5 body-circle
radii wide, as MediaPipe draws it), the model sees that square at 256×256 in RGB [0, 1] and
returns the person's presence, 39 landmarks and a segmentation mask of the square. The square is
turned by whole quarter turns so that the person stands upright in it (a phone held sideways
gives people lying on their side); the mask is then upright too, ready for the silhouette
normaliser, and it is mapped back to the frame only as a box. Landmarks 33 and 34 (hips and
body-circle point) give the square for the same person in the next frame, so a tracked person
needs no detector between detections (MediaPipe's own tracking).

In  frame uint8 [H, W, 3] RGB and a ``Region``. Out a ``Segment``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from service.people.litert import TfliteModel

SIZE = 256
ROI_SCALE = 1.25  # MediaPipe's: the square is 1.25 × the body circle's diameter
PRESENT = 0.5
EDGE = 2  # pixels: a mask this close to the square's or the frame's edge is cut off there
_TURNS = [np.array(m, np.float64) for m in ([[1, 0], [0, 1]], [[0, -1], [1, 0]])]
_TURNS += [_TURNS[1] @ _TURNS[1], _TURNS[1] @ _TURNS[1] @ _TURNS[1]]


def quarter_turns(hip: np.ndarray, top: np.ndarray) -> int:
    """Clockwise quarter turns that bring ``top`` above ``hip`` (image coordinates)."""
    dx, dy = np.asarray(top, float) - np.asarray(hip, float)
    return int(np.round((np.degrees(np.arctan2(-dy, dx)) - 90) / 90)) % 4


@dataclass(frozen=True)
class Region:
    """A square around one person: centre (frame pixels), side, and quarter turns to upright."""

    centre: tuple[float, float]
    side: float
    turns: int = 0

    @classmethod
    def around(cls, hip, top, turns: int | None = None) -> Region:
        radius = float(np.linalg.norm(np.asarray(top, float) - np.asarray(hip, float)))
        turns = quarter_turns(hip, top) if turns is None else turns
        return cls((float(hip[0]), float(hip[1])), max(2 * radius * ROI_SCALE, 8.0), turns)

    def to_square(self) -> np.ndarray:
        """The affine map float [2, 3] from frame pixels to the 256×256 square."""
        linear = _TURNS[self.turns % 4] * (SIZE / self.side)
        shift = SIZE / 2 - linear @ np.array(self.centre)
        return np.hstack([linear, shift[:, None]])


@dataclass(frozen=True)
class Segment:
    presence: float
    mask: np.ndarray  # uint8 [256, 256], 0/255, the person upright
    box: np.ndarray  # float [4]: x0, y0, x1, y1 of the mask in frame pixels
    next_region: Region  # where this person should be in the next frame
    whole: bool  # the mask touches neither the square's edge nor the frame's

    @property
    def found(self) -> bool:
        return self.presence >= PRESENT and self.mask.any()


class PoseSegmenter:
    def __init__(self, model: TfliteModel):
        if model.input_shape != (1, SIZE, SIZE, 3):
            raise ValueError(f"not the pose landmark model: input {model.input_shape}")
        self.model = model
        self._input = np.empty((1, SIZE, SIZE, 3), np.float32)

    def __call__(self, frame: np.ndarray, region: Region) -> Segment:
        forward = region.to_square()
        square = cv2.warpAffine(frame, forward, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
        np.multiply(square, 1 / 255, out=self._input[0], casting="unsafe")
        outputs = self.model(self._input)
        landmarks = outputs["Identity"][0].reshape(39, 5)  # x, y, z, visibility, presence
        presence = float(np.clip(outputs["Identity_1"][0, 0], 0.0, 1.0))
        mask = np.where(outputs["Identity_2"][0, :, :, 0] > 0, np.uint8(255), np.uint8(0))
        backward = cv2.invertAffineTransform(forward)
        hip, top = (backward[:, :2] @ landmarks[i, :2] + backward[:, 2] for i in (33, 34))
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if len(rows):
            left, right, upper, lower = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
            corners = np.array(
                [[left, upper], [right, upper], [left, lower], [right, lower]], float
            )
            mapped = corners @ backward[:, :2].T + backward[:, 2]
            box = np.concatenate([mapped.min(0), mapped.max(0)])
            height, width = frame.shape[:2]
            inside = rows[0] >= EDGE and cols[0] >= EDGE
            inside &= rows[-1] < SIZE - EDGE and cols[-1] < SIZE - EDGE
            inside &= box[0] >= EDGE and box[1] >= EDGE
            inside &= box[2] <= width - EDGE and box[3] <= height - EDGE
            box = np.clip(box, 0, [width, height, width, height])  # the mask runs past the edge
        else:
            box, inside = np.zeros(4), False
        return Segment(presence, mask, box, Region.around(hip, top), bool(inside))
