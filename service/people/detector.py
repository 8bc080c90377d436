"""Find people in a frame: BlazePose's person detector (``pose_detection.tflite``), decoded here.

The model sees a 224×224 RGB square in [-1, 1] and scores 2,254 SSD anchors; each anchor holds
a box and four keypoints, of which the first two matter: the middle of the hips and a point on
the circle that holds the whole body (so ``radius`` is about half the person's height, and the
hip → circle-point direction says which way is up for that person). Decoding follows MediaPipe's
own graph (``pose_detection_cpu.pbtxt``: anchors, sigmoid scores, weighted non-maximum
suppression at IoU 0.3).

People of a walking video are small in the frame, and a whole 720×1280 frame squeezed into
224×224 leaves them a few pixels of face: the detector then misses most of them (one of two
people in the hall clip). So the frame is cut into squares along its long side (three for
16:9, overlapping) and each square is searched; now and then also finer squares, two thirds of
the short side (eight for 16:9: the lobby clip's farther walker is found only there); a person
found in two squares is kept once.

In  frame uint8 [H, W, 3] RGB. Out detections in the frame's pixels, best first.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from service.people.litert import TfliteModel

SIZE = 224
SCORE = 0.5  # MediaPipe's own threshold
NMS_IOU = 0.3


@dataclass(frozen=True)
class Detection:
    score: float
    hip: np.ndarray  # float [2]: x, y of the middle of the hips
    top: np.ndarray  # float [2]: the body circle's point, above the hips for an upright person

    @property
    def radius(self) -> float:
        return float(np.linalg.norm(self.top - self.hip))


def anchors() -> np.ndarray:
    """MediaPipe's SSD anchors for this model: centres float32 [2254, 2] in [0, 1] (fixed size:
    strides 8, 16, 32, 32, 32; two anchors per layer per cell, equal strides grouped)."""
    strides = [8, 16, 32, 32, 32]
    centres = []
    layer = 0
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 2
            last += 1
        cells = int(np.ceil(SIZE / strides[layer]))
        grid = (np.arange(cells) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), per_cell, axis=0))
        layer = last
    return np.concatenate(centres).astype(np.float32)


def _offsets(length: int, side: int, step: float) -> list[int]:
    """Evenly spaced starts of windows of ``side`` covering ``length``, at most ``step × side``
    apart."""
    if length <= side * 1.1:
        return [0]
    count = int(np.ceil((length - side) / (step * side))) + 1
    return [int(o) for o in np.linspace(0, length - side, count).round()]


def squares(height: int, width: int, fine: bool = False) -> list[tuple[int, int, int]]:
    """Overlapping squares (x0, y0, side) covering a frame: as wide as the frame's short side
    along its long side (three for 16:9), or, ``fine``, two thirds of it in both directions,
    overlapping by half (eight for 16:9), for people too small for the first."""
    side = min(height, width)
    step = 0.75
    if fine:
        side, step = round(side * 2 / 3), 0.6
    return [(x, y, side) for y in _offsets(height, side, step) for x in _offsets(width, side, step)]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


class PoseDetector:
    def __init__(self, model: TfliteModel, score: float = SCORE):
        if model.input_shape != (1, SIZE, SIZE, 3):
            raise ValueError(f"not the pose detector: input {model.input_shape}")
        self.model, self.score = model, score
        self.anchors = anchors()
        self._input = np.empty((1, SIZE, SIZE, 3), np.float32)

    def __call__(self, frame: np.ndarray, fine: bool = False) -> list[Detection]:
        """Everyone found in the frame, searched square by square (``fine``: also on the finer
        squares), best first."""
        found: list[Detection] = []
        height, width = frame.shape[:2]
        chosen = squares(height, width) + (squares(height, width, fine=True) if fine else [])
        for x0, y0, side in chosen:
            for d in self.square(frame[y0 : y0 + side, x0 : x0 + side]):
                offset = np.array([x0, y0], np.float32)
                found.append(Detection(d.score, d.hip + offset, d.top + offset))
        found.sort(key=lambda d: -d.score)
        kept: list[Detection] = []
        for d in found:  # the same person seen from two squares: hips closer than half a radius
            if all(np.linalg.norm(d.hip - k.hip) > 0.5 * max(k.radius, 1.0) for k in kept):
                kept.append(d)
        return kept

    def square(self, image: np.ndarray) -> list[Detection]:
        """Detections in one square image (any size, resized to 224)."""
        side = image.shape[0]
        resized = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        np.multiply(resized, 1 / 127.5, out=self._input[0], casting="unsafe")
        self._input -= 1.0
        outputs = self.model(self._input)
        raw, logits = outputs["Identity"][0], outputs["Identity_1"][0, :, 0]
        keep = np.flatnonzero(logits > np.log(self.score / (1 - self.score)))
        if not len(keep):
            return []
        scores = 1 / (1 + np.exp(-np.clip(logits[keep], -100, 100)))
        values = raw[keep] / SIZE
        centres = self.anchors[keep]
        middle = values[:, 0:2] + centres
        half = values[:, 2:4] / 2
        boxes = np.concatenate([middle - half, middle + half], 1)
        points = values[:, 4:8].reshape(-1, 2, 2) + centres[:, None, :]  # hips, circle point
        detections = []
        used = np.zeros(len(keep), bool)
        for best in np.argsort(-scores):  # weighted NMS, as MediaPipe's graph does
            if used[best]:
                continue
            group = (_iou(boxes[best], boxes) > NMS_IOU) & ~used
            used |= group
            weights = scores[group] / scores[group].sum()
            hip, top = np.tensordot(weights, points[group], axes=1) * side
            detections.append(Detection(float(scores[best]), hip, top))
        return detections
