"""What one video may cost, and the errors of the video pipeline (shared by its users).

The service's clip errors (``service.clips``) are reused, so a video is refused with the same
status codes and shapes as any other upload.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.clip_limits import ClipError
from service.errors import ServiceError


@dataclass(frozen=True)
class VideoLimits:
    """A colour video is decoded and processed frame by frame (never held whole), so its cost is
    CPU time, bounded by frames, pixels and duration; memory is capped by the sandbox."""

    max_frames: int = 1000
    max_frame_pixels: int = 2048 * 2048  # 4K (3840×2160) is refused from the container's header
    max_pixels: int = 1000 * 1280 * 720  # all decoded frames together: 1,000 frames of 720p
    max_seconds: float = 60.0  # the container's duration
    cpu_seconds: int = 180  # the sandbox's CPU time (1,000 frames of 720p take about 40 s)
    wall_seconds: int = 180  # the sandbox's wall time
    memory_bytes: int = 2 * 1024**3  # the sandbox's address space (it peaks at about 0.85 GB)


class VideoError(ClipError):
    """A video the pipeline cannot use (422)."""

    code = "invalid_video"


class TrackNotFoundError(VideoError):
    """The track asked for is not among the video's usable tracks."""

    status, code = 404, "track_not_found"


class MissingExtraError(RuntimeError):
    """The ``video`` extra, or the models it copies out of the mediapipe wheel, are missing."""


class VideoUnavailableError(ServiceError):
    """This install cannot process colour video (the ``video`` extra or its models missing)."""

    status, code = 503, "video_unavailable"


class VideoBusyError(ServiceError):
    """Every video slot of this process is taken."""

    status, code = 429, "too_many_requests"
    headers = {"Retry-After": "5"}  # noqa: RUF012
