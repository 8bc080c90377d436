"""The video endpoints on a real server (uvicorn, the shipped default model, the pipeline in its
sandbox), and ``gaitlab video identify`` against it: enroll two people of the hall clip by their
track, identify them in the same and another real video, and every refusal in the one error
shape. Real footage from ../shared/videos (skipped where absent); refusals use generated video.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import cv2
import httpx
import pytest

from tests.service.live_server import ADMIN_KEY, CLIENT_KEY, KEYS, REPO, Server
from tests.service.people.conftest import blank_video, cut, real_video, video_extra_missing

pytestmark = pytest.mark.slow
ADMIN, CLIENT = {"X-API-Key": ADMIN_KEY}, {"X-API-Key": CLIENT_KEY}
MAX_VIDEO_UPLOAD = 8_000_000  # the cuts are re-encoded (MPEG-4 part 2): larger than the phone's


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if reason := video_extra_missing():
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("video-api")
    running = Server(
        None,
        folder / "data",
        env={**KEYS, "GAITLAB_VIDEO_SLOTS": "1", "GAITLAB_MAX_UPLOAD_BYTES": str(MAX_VIDEO_UPLOAD)},
    ).start()
    yield running
    running.stop()


def video(data: bytes, name: str = "walk.mp4") -> dict:
    return {"clip": (name, data, "video/mp4")}


def identify(server, data: bytes, **params) -> httpx.Response:
    return httpx.post(
        f"{server.url}/identify/video",
        files=video(data),
        params=params,
        headers=CLIENT,
        timeout=120,
    )


def enroll(server, subject: str, data: bytes, track, headers=ADMIN) -> httpx.Response:
    return httpx.post(
        f"{server.url}/gallery/subjects/{subject}/samples/video",
        files=video(data),
        data={"track": str(track)},
        headers=headers,
        timeout=120,
    )


def test_enroll_people_of_a_video_and_identify_them_elsewhere(server, hall_cut, tmp_path):
    data = hall_cut.read_bytes()
    first = identify(server, data, pictures="true")
    assert first.status_code == 200, first.text
    answer = first.json()
    assert [t["id"] for t in answer["tracks"]] == [1, 2]
    for track in answer["tracks"]:
        assert track["thumbnail"].startswith("data:image/jpeg;base64,")
        assert track["identify"]["probe"]["strip"].startswith("data:image/png;base64,")
        assert track["identify"]["decision"] is None  # the gallery is empty
        assert len(track["boxes"]) == len(track["frames"])
    # C walks first, B enters: enroll them by their track ids (the pipeline runs again)
    for subject, track in (("C", 1), ("B", 2)):
        enrolled = enroll(server, subject, data, track)
        assert enrolled.status_code == 201, enrolled.text
        assert enrolled.json()["frames"] == answer["tracks"][track - 1]["identify"]["frames"]
    again = identify(server, data).json()
    assert [t["identify"]["decision"] for t in again["tracks"]] == ["C", "B"]
    assert "thumbnail" not in again["tracks"][0] or again["tracks"][0]["thumbnail"] is None
    # B alone, in the street, another day
    street = cut(real_video("street-two-walkers-side.mp4"), 112, 175, tmp_path / "street.mp4")
    found = identify(server, street.read_bytes()).json()
    assert [t["identify"]["hits"][0]["subject_id"] for t in found["tracks"]] == ["B"]


def test_gaitlab_video_identify_and_annotate(server, hall_cut, tmp_path):
    out = tmp_path / "annotated.mp4"
    command = [sys.executable, "-m", "gaitlab", "video", "identify", str(hall_cut)]
    command += ["--url", server.url, "--api-key", CLIENT_KEY, "--annotate", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "track 1: frames" in done.stdout
    assert "track 2: frames" in done.stdout
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 75
    capture.release()
    refused = subprocess.run(
        [*command[:-2], "--api-key", "wrong-key-0123456789abcdef"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "401" in refused.stderr


def test_refusals(server, tmp_path):
    small = blank_video(tmp_path / "small.mp4", 5, 160, 120).read_bytes()
    four_k = blank_video(tmp_path / "4k.mp4", 1, 3840, 2160).read_bytes()
    cases = [
        (identify, (b"\x89PNG\r\n\x1a\n" + b"0" * 100,), {}, 415, "unsupported_format"),
        (identify, (b"",), {}, 422, "corrupt_clip"),
        (identify, (small,), {"rotate": "45"}, 422, "invalid_request"),
        (identify, (b"\x00" * (MAX_VIDEO_UPLOAD + 10),), {}, 413, "clip_too_large"),
    ]
    for call, args, params, status, code in cases:
        answer = call(server, *args, **params)
        assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    started = time.perf_counter()
    answer = identify(server, four_k)
    assert (answer.status_code, answer.json()["error"]) == (413, "clip_too_large")
    assert "3840×2160" in answer.json()["detail"]
    assert time.perf_counter() - started < 3
    answer = httpx.post(f"{server.url}/identify/video", files=video(small), timeout=30)
    assert (answer.status_code, answer.json()["error"]) == (401, "missing_api_key")
    answer = enroll(server, "X", small, 1, headers=CLIENT)
    assert (answer.status_code, answer.json()["error"]) == (403, "forbidden")
    answer = enroll(server, "X", small, 1)
    assert (answer.status_code, answer.json()["error"]) == (404, "track_not_found")
    assert answer.json()["detail"] == "no usable track 1; usable tracks: none"
    answer = enroll(server, "X", small, 0)
    assert (answer.status_code, answer.json()["error"]) == (422, "invalid_request")


def test_one_video_at_a_time_when_one_slot(server, tmp_path):
    """GAITLAB_VIDEO_SLOTS=1: a second video while one is processed is a 429, at once."""
    slow = blank_video(tmp_path / "slow.mp4", 150, 640, 360).read_bytes()
    answers = []
    worker = threading.Thread(target=lambda: answers.append(identify(server, slow)))
    worker.start()
    time.sleep(0.8)
    second = identify(server, slow)
    worker.join()
    assert answers[0].status_code == 200
    assert (second.status_code, second.json()["error"]) == (429, "too_many_requests")
    assert second.headers["retry-after"] == "5"
    assert json.loads(answers[0].text)["tracks"] == []
