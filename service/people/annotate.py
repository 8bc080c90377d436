"""Draw each person's box, track id and name on the video (``gaitlab video identify
--annotate OUT.mp4``). Boxes are in the pixels of the frames as ``cv2.VideoCapture`` decodes
them, as in ``tracks.json``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import cv2
import numpy as np

COLOURS = [(66, 133, 244), (219, 68, 55), (15, 157, 88), (244, 180, 0), (171, 71, 188)]


def boxes_by_frame(tracks: Iterable[Mapping]) -> dict[int, list[tuple[int, list[float]]]]:
    """{frame: [(track id, box), …]} from tracks in the tracks.json form."""
    found: dict[int, list[tuple[int, list[float]]]] = {}
    for track in tracks:
        for frame, box in zip(track["frames"], track["boxes"], strict=True):
            found.setdefault(frame, []).append((track["id"], box))
    return found


def draw(frame: np.ndarray, boxes: list[tuple[int, list[float]]], names: Mapping[int, str]):
    """Draw on ``frame`` (BGR, in place)."""
    thickness = max(2, frame.shape[0] // 360)
    scale = max(0.6, frame.shape[0] / 1000)
    for track_id, box in boxes:
        colour = COLOURS[(track_id - 1) % len(COLOURS)]
        x0, y0, x1, y1 = (round(v) for v in box)
        cv2.rectangle(frame, (x0, y0), (x1, y1), colour, thickness)
        label = f"{track_id}: {names.get(track_id) or '?'}"
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(y0 - h - base - 4, 0)
        cv2.rectangle(frame, (x0, top), (x0 + w + 6, top + h + base + 4), colour, -1)
        cv2.putText(
            frame,
            label,
            (x0 + 3, top + h + 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )


def annotate(video: Path, tracks: list[Mapping], names: Mapping[int, str], out: Path) -> int:
    """Write ``out`` (MP4) with the boxes drawn; the number of frames written."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    found = boxes_by_frame(tracks)
    writer = None
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                if not writer.isOpened():
                    raise OSError(f"cannot write {out}")
            draw(frame, found.get(index, []), names)
            writer.write(frame)
            index += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return index
