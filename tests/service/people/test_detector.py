"""The person detector's decoding (anchors, squares) and what it finds on a real frame, upright
and turned."""

from __future__ import annotations

import cv2
import numpy as np

from service.people.detector import anchors, squares
from service.people.segmenter import Region, quarter_turns
from tests.service.people.conftest import real_video


def test_anchors_are_mediapipes():
    centres = anchors()
    assert centres.shape == (2254, 2)
    assert centres.min() > 0
    assert centres.max() < 1
    assert np.allclose(centres[0], [0.5 / 28, 0.5 / 28])  # stride 8: a 28×28 grid first


def test_squares_cover_the_frame_along_its_long_side():
    portrait = squares(1280, 720)
    assert [(x, side) for x, _, side in portrait] == [(0, 720)] * 3
    assert [y for _, y, _ in portrait] == [0, 280, 560]
    assert squares(720, 1280)[-1] == (560, 0, 720)
    assert squares(500, 500) == [(0, 0, 500)]
    fine = squares(720, 1280, fine=True)
    assert len(fine) == 8
    assert {side for _, _, side in fine} == {480}
    assert {(x, y) for x, y, _ in fine} == {(x, y) for x in (0, 267, 533, 800) for y in (0, 240)}


def test_quarter_turns():
    hip = np.array([100.0, 100.0])
    assert quarter_turns(hip, hip + np.array([0, -50])) == 0  # head up: upright
    assert quarter_turns(hip, hip + np.array([-50, 0])) == 1  # head left: turn clockwise once
    assert quarter_turns(hip, hip + np.array([0, 50])) == 2
    assert quarter_turns(hip, hip + np.array([50, 0])) == 3


def test_region_maps_the_person_upright():
    region = Region((100.0, 50.0), 64.0, turns=1)
    forward = region.to_square()
    head_left = forward[:, :2] @ np.array([80.0, 50.0]) + forward[:, 2]  # left of the centre
    assert np.allclose(head_left, [128, 128 - 20 * 256 / 64])  # above the square's centre


def frame_of(name: str, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(real_video(name)))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def test_both_people_of_the_hall_are_found_upright_and_turned(models):
    detector, _ = models
    frame = frame_of("hall-two-walkers-side.mp4", 80)  # B at x≈165, C at x≈557
    found = detector(frame)
    assert sorted(round(d.hip[0], -2) for d in found) == [200, 600]
    assert all(quarter_turns(d.hip, d.top) == 0 for d in found)
    turned = cv2.rotate(frame, cv2.ROTATE_90_COUNTERCLOCKWISE)  # people lie, heads left
    found = detector(turned)
    assert len(found) == 2
    assert all(quarter_turns(d.hip, d.top) == 1 for d in found)
