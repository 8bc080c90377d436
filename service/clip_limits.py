"""What one upload may cost, and the errors of an upload that cannot be a clip: shared by the
formats the service decodes in process (``service.clips``) and videos decoded in a capped child
process (``service.video``), so that neither imports the other for them."""

from __future__ import annotations

import json
import sys
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


# --- refusals from a capped child process (service.video, service.people.sandbox)

REFUSED = 3
"""A child's exit status for "the upload is refused": the ``ClipError``, as JSON, is its last
line on stderr (:func:`refuse`, :func:`refusal_of`)."""


def refuse(error: ClipError) -> int:
    """In a child: tell the parent why the upload is refused; returns the exit status."""
    print(json.dumps({"code": error.code, "detail": error.detail}), file=sys.stderr)
    return REFUSED


def refusal_of(
    returncode: int, stderr: bytes, errors: tuple[type[ClipError], ...] = ()
) -> ClipError | None:
    """In the parent: the child's refusal (``refuse``), or None when it did not refuse; the
    codes it may refuse with are this module's errors and ``errors``."""
    if returncode != REFUSED:
        return None
    known = {
        cls.code: cls
        for cls in (ClipTooLargeError, CorruptClipError, UnsupportedFormatError, *errors)
    }
    for line in reversed(stderr.decode("utf-8", "replace").splitlines()):
        try:
            refusal = json.loads(line)
            return known[refusal["code"]](str(refusal["detail"]))
        except (ValueError, KeyError, TypeError):
            continue
    return None
