"""What a video may cost: the container's word is checked before a frame is decoded, every
decoded frame is charged (containers lie), and the service's sandbox holds memory, CPU and wall
time. Generated videos: these need no real footage."""

from __future__ import annotations

import struct
import time

import cv2
import numpy as np
import pytest

from service.clips import ClipTooLargeError, CorruptClipError, UnsupportedFormatError
from service.people.limits import VideoLimits
from service.people.source import VideoSource
from tests.service.people.conftest import blank_video, video_extra_missing


def frames_read(path, limits) -> int:
    return sum(1 for _ in VideoSource(str(path), limits))


@pytest.fixture(scope="module")
def four_k(tmp_path_factory):
    """One 3840×2160 frame, in a container that says so."""
    return blank_video(tmp_path_factory.mktemp("4k") / "4k.mp4", 1, 3840, 2160)


def test_4k_is_refused_from_the_header(four_k):
    started = time.perf_counter()
    with pytest.raises(ClipTooLargeError, match="3840×2160"):
        VideoSource(str(four_k), VideoLimits())
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        (VideoLimits(max_frames=30), "40 frames; at most 30"),
        (VideoLimits(max_seconds=1.0), "lasts 1 s; at most 1 s"),
        (VideoLimits(max_pixels=64 * 48 * 39), "at most 119808 pixels in all"),
    ],
)
def test_frames_duration_and_pixels_from_the_container(tmp_path, limits, match):
    path = blank_video(tmp_path / "long.mp4", 40, 64, 48)
    assert frames_read(path, VideoLimits()) == 40
    with pytest.raises(ClipTooLargeError, match=match):
        VideoSource(str(path), limits)  # before a frame is decoded


def lying_avi(path, frames: int = 40):
    """An MJPEG AVI whose headers say it holds one frame; it holds ``frames``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for index in range(frames):
        writer.write(np.full((48, 64, 3), index * 5, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    data[48:52] = struct.pack("<I", 1)  # avih: total frames
    stream = data.find(b"strh") + 8
    data[stream + 32 : stream + 36] = struct.pack("<I", 1)  # strh: length
    path.write_bytes(bytes(data))
    return path


def test_every_decoded_frame_is_charged(tmp_path):
    path = lying_avi(tmp_path / "lies.avi")
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) == 1
    with pytest.raises(ClipTooLargeError, match="more than 30 frames"):
        frames_read(path, VideoLimits(max_frames=30))


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not really" * 100)
    with pytest.raises((UnsupportedFormatError, CorruptClipError)):
        frames_read(path, VideoLimits())


# --- the sandbox the service runs videos in


@pytest.fixture
def sandboxed():
    if reason := video_extra_missing():
        pytest.skip(reason)
    from service.people.sandbox import find_people_sandboxed

    return find_people_sandboxed


def test_the_sandbox_refuses_a_4k_video_quickly(sandboxed, four_k):
    started = time.perf_counter()
    with pytest.raises(ClipTooLargeError, match="3840×2160"):
        sandboxed(four_k.read_bytes(), VideoLimits())
    assert time.perf_counter() - started < 3  # a process start and a header, no model run


def test_the_sandbox_caps_memory(sandboxed, tmp_path):
    data = blank_video(tmp_path / "v.mp4", 5, 320, 240).read_bytes()
    with pytest.raises(ClipTooLargeError, match="memory"):
        sandboxed(data, VideoLimits(memory_bytes=300 * 1024**2))


def test_the_sandbox_caps_wall_time(sandboxed, tmp_path):
    data = blank_video(tmp_path / "v.mp4", 300, 640, 480).read_bytes()
    started = time.perf_counter()
    with pytest.raises(ClipTooLargeError, match="over 1 s to process"):
        sandboxed(data, VideoLimits(wall_seconds=1))
    assert time.perf_counter() - started < 3


def test_the_sandbox_reports_a_lying_container(sandboxed, tmp_path):
    data = lying_avi(tmp_path / "lies.avi").read_bytes()
    with pytest.raises(ClipTooLargeError, match="more than 30 frames"):
        sandboxed(data, VideoLimits(max_frames=30))


def test_the_sandbox_finds_no_one_in_an_empty_video(sandboxed, tmp_path):
    files, timings = sandboxed(
        blank_video(tmp_path / "v.mp4", 10, 320, 240).read_bytes(), VideoLimits()
    )
    assert files.document["tracks"] == []
    assert files.document["video"]["frames"] == 10
    assert timings["decode"] >= 0
