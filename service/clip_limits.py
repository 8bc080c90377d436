"""What one upload may cost, and the errors of an upload that cannot be a clip: shared by the
formats the service decodes in process (``service.clips``) and videos decoded in a capped child
process (``service.video``), so that neither imports the other for them."""

from __future__ import annotations

from dataclasses import dataclass

from service.errors import ServiceError


@dataclass(frozen=True)
class ClipLimits:
    """What one upload may cost. Every container (zip, GIF, TIFF, video, array) charges the same
    budget, from headers, before each frame is decoded."""

    max_bytes: int = 64 * 1024 * 1024  # the upload itself
    max_frames: int = 1000
    max_frame_pixels: int = 2048 * 2048
    max_total_pixels: int = 128 * 1024 * 1024  # all frames together, decoded (1 byte each)
    max_compression_ratio: int = 200  # per archive member; silhouettes compress well, bombs more


class ClipError(ServiceError, ValueError):
    """An upload that cannot be turned into a clip."""

    status, code = 422, "invalid_clip"


class UnsupportedFormatError(ClipError):
    status, code = 415, "unsupported_format"


class ClipTooLargeError(ClipError):
    status, code = 413, "clip_too_large"


class CorruptClipError(ClipError):
    code = "corrupt_clip"


class UnsafeArchiveError(ClipError):
    code = "unsafe_archive"


class FrameBudget:
    """The frames and decoded pixels one upload may still cost; ``charge`` before decoding."""

    def __init__(self, limits: ClipLimits):
        self.limits = limits
        self.frames = 0
        self.pixels = 0

    def charge(self, height: int, width: int, count: int = 1) -> None:
        limits = self.limits
        if height < 1 or width < 1 or count < 1:
            raise CorruptClipError(f"{count} frames of {height}×{width} pixels hold nothing")
        if height * width > limits.max_frame_pixels:
            raise ClipTooLargeError(
                f"frames of {height}×{width} pixels; at most {limits.max_frame_pixels} per frame"
            )
        self.frames += count
        self.pixels += count * height * width
        if self.frames > limits.max_frames:
            raise ClipTooLargeError(
                f"more than {limits.max_frames} frames; at most {limits.max_frames} are accepted"
            )
        if self.pixels > limits.max_total_pixels:
            raise ClipTooLargeError(
                f"more than {limits.max_total_pixels} pixels to decode in all; that is the limit"
            )
