"""``gaitlab video tracks VIDEO --out DIR``: the exact tracks.json other tools read, and the
per-track clips; what the service reads back from its sandbox is checked the same way."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from service.clips import CorruptClipError
from service.people.tracks_file import read_tracks
from tests.conftest import REPO


@pytest.fixture(scope="module")
def written(models, hall_cut, tmp_path_factory):
    out = tmp_path_factory.mktemp("tracks")
    done = subprocess.run(
        [sys.executable, "-m", "gaitlab", "video", "tracks", str(hall_cut), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_the_tracks_json_contract(written, hall_cut):
    out, printed = written
    document = json.loads((out / "tracks.json").read_text())
    capture = cv2.VideoCapture(str(hall_cut))
    ok, frame = capture.read()
    assert ok
    height, width = frame.shape[:2]
    assert document["video"] == {
        "frames": 75,
        "fps": pytest.approx(capture.get(cv2.CAP_PROP_FPS), abs=1e-3),
        "width": width,
        "height": height,
        "rotation": 0,
    }
    assert len(document["tracks"]) == 2
    for track in document["tracks"]:
        assert {"id", "frames", "boxes", "clip"} <= set(track)
        assert isinstance(track["id"], int)
        assert all(isinstance(f, int) for f in track["frames"])
        assert track["frames"] == sorted(set(track["frames"]))
        assert len(track["boxes"]) == len(track["frames"])
        for x0, y0, x1, y1 in track["boxes"]:
            assert 0 <= x0 < x1 <= width
            assert 0 <= y0 < y1 <= height
        clip = np.load(out / track["clip"], allow_pickle=False)
        assert clip.dtype == np.uint8
        assert clip.shape[1:] == (64, 44)
        assert len(clip) == len(track["clip_frames"]) >= 15
        assert set(track["clip_frames"]) <= set(track["frames"])
        assert (out / track["thumbnail"]).stat().st_size > 0
        assert f"track {track['id']}: frames" in printed
    ids = [t["id"] for t in document["tracks"]] + [t["id"] for t in document["dropped"]]
    assert sorted(ids) == list(range(1, len(ids) + 1))


def test_what_is_read_back_is_checked(written, tmp_path):
    out, _ = written
    files = read_tracks(out, max_frames=1000)
    assert sorted(files.clips) == [1, 2]
    document = json.loads((out / "tracks.json").read_text())
    np.save(tmp_path / "track-1.npy", np.zeros((3, 64, 64), np.uint8))
    (tmp_path / "track-1.jpg").write_bytes(b"jpeg")
    document["tracks"] = [{**document["tracks"][0], "clip": "../../track-1.npy"}]
    (tmp_path / "tracks.json").write_text(json.dumps(document))
    with pytest.raises(CorruptClipError, match="a clip of uint8"):
        read_tracks(tmp_path, max_frames=1000)
    with pytest.raises(CorruptClipError, match="frames and boxes disagree"):
        read_tracks(out, max_frames=10)
