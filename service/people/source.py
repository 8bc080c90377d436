"""Frames of a colour video, one at a time, charged against ``VideoLimits`` as they come.

The container's word (frame size, frame count, duration) is checked before a frame is decoded,
so a long 4K video is refused at once; then every decoded frame is charged, since a container
can lie. Frames are as ``cv2.VideoCapture`` decodes them by default (rotation metadata applied,
BGR), and nothing is kept: memory does not grow with the video's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from service.clip_limits import ClipTooLargeError, CorruptClipError, UnsupportedFormatError
from service.people.limits import VideoLimits


@dataclass(frozen=True)
class VideoInfo:
    frames: int  # as the container declares them (0: unknown)
    fps: float
    width: int
    height: int


class VideoSource:
    """``info`` from the container; iterate for (index, frame uint8 [H, W, 3] BGR)."""

    def __init__(self, path: str, limits: VideoLimits):
        self.limits = limits
        self.capture = cv2.VideoCapture(path)
        if not self.capture.isOpened():
            raise UnsupportedFormatError("not a video OpenCV can open")
        declared = max(int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.info = VideoInfo(declared, fps if 0 < fps < 1000 else 30.0, width, height)
        self._check(width, height, declared)

    def _check(self, width: int, height: int, frames: int) -> None:
        limits = self.limits
        if width * height > limits.max_frame_pixels:
            raise ClipTooLargeError(
                f"frames of {width}×{height} pixels; at most {limits.max_frame_pixels} per frame"
            )
        if frames > limits.max_frames:
            raise ClipTooLargeError(f"{frames} frames; at most {limits.max_frames}")
        if frames / self.info.fps > limits.max_seconds:
            raise ClipTooLargeError(
                f"the video lasts {frames / self.info.fps:.0f} s; at most {limits.max_seconds:g} s"
            )
        if frames * width * height > limits.max_pixels:
            raise ClipTooLargeError(
                f"{frames} frames of {width}×{height} pixels; at most {limits.max_pixels} "
                "pixels in all"
            )

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        shape, pixels, index = None, 0, 0
        try:
            while True:
                ok, frame = self.capture.read()
                if not ok:
                    break
                if frame.ndim != 3 or frame.shape[2] != 3:
                    raise CorruptClipError("the video's frames are not colour frames")
                if shape is None:
                    shape = frame.shape
                    self._check(shape[1], shape[0], 0)
                elif frame.shape != shape:
                    raise CorruptClipError("the video's frames change size")
                pixels += shape[0] * shape[1]
                if index >= self.limits.max_frames:
                    raise ClipTooLargeError(f"more than {self.limits.max_frames} frames")
                if pixels > self.limits.max_pixels:
                    raise ClipTooLargeError(
                        f"more than {self.limits.max_pixels} pixels to decode in all"
                    )
                if (index + 1) / self.info.fps > self.limits.max_seconds:
                    raise ClipTooLargeError(f"longer than {self.limits.max_seconds:g} s")
                yield index, frame
                index += 1
        finally:
            self.capture.release()
        if shape is None:
            raise UnsupportedFormatError("the video holds no frame OpenCV can decode")
