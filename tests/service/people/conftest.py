"""Fixtures of the video pipeline's tests: the real phone videos in ../shared/videos (skipped
with the reason where absent), short cuts of them made at test time (never kept in the
repository), and the pipeline's models (the video extra)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO

VIDEOS = Path(os.environ.get("GAITLAB_SHARED_VIDEOS", REPO.parent / "shared" / "videos"))


def video_extra_missing() -> str | None:
    from service.people.assets import MODELS, models_dir

    for module in ("ai_edge_litert", "cjm_byte_track"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (the video extra: bash scripts/install.sh video)"
    for name in MODELS:
        if not (models_dir() / name).is_file():
            return f"{models_dir() / name} is missing (python -m service.people.assets)"
    return None


@pytest.fixture(scope="session")
def models():
    """The detector and the segmenter, loaded once."""
    if reason := video_extra_missing():
        pytest.skip(reason)
    from service.people.load import load_models

    return load_models()


def real_video(name: str) -> Path:
    path = VIDEOS / name
    if not path.is_file():
        pytest.skip(f"the real videos are not in {VIDEOS} (see ../shared/videos/README.md)")
    return path


def cut(source: Path, start: int, stop: int, out: Path) -> Path:
    """Frames [start, stop) of ``source`` as a new MP4 (re-encoded)."""
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    for index in range(stop):
        ok, frame = capture.read()
        if not ok:
            break
        if index < start:
            continue
        if writer is None:
            size = (frame.shape[1], frame.shape[0])
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        writer.write(frame)
    capture.release()
    writer.release()
    return out


def blank_video(out: Path, frames: int, width: int, height: int, fps: float = 30.0) -> Path:
    """A video of grey frames with a moving bar (no people)."""
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for index in range(frames):
        frame = np.full((height, width, 3), 128, np.uint8)
        x = (index * 7) % max(width - 10, 1)
        frame[:, x : x + 10] = (40, 90, 200)
        writer.write(frame)
    writer.release()
    return out


@pytest.fixture(scope="session")
def hall_cut(tmp_path_factory) -> Path:
    """The hall clip where both B and C are followed (frames 50–125: C from the start, B
    entering at about 66)."""
    source = real_video("hall-two-walkers-side.mp4")
    return cut(source, 50, 125, tmp_path_factory.mktemp("hall") / "hall.mp4")
