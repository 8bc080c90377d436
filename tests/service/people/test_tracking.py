"""ByteTrack as the pipeline uses it: each box gets the track that took it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cjm_byte_track")

from service.people.tracking import PeopleTracker


def walker(x: float, width: float = 60.0) -> list[float]:
    return [x, 100.0, x + width, 300.0]


def test_two_people_crossing_keep_their_tracks():
    """Two people walk towards each other, overlap for several frames (IoU up to 1) and part:
    each keeps its track, and the boxes handed in are matched to the right one."""
    tracker = PeopleTracker(fps=30)
    seen = {"left": set(), "right": set()}
    for step in range(60):
        left, right = 40.0 + 8 * step, 520.0 - 8 * step  # they meet at frame 30
        boxes = np.array([walker(left), walker(right)])
        owners = tracker.update(boxes, np.array([0.95, 0.9]))
        if step >= 2:  # a track is confirmed on its second frame
            assert None not in owners, step
            seen["left"].add(owners[0])
            seen["right"].add(owners[1])
    assert len(seen["left"]) == 1
    assert len(seen["right"]) == 1
    assert seen["left"] != seen["right"]


def test_a_person_hidden_for_a_while_is_found_again():
    """Walking 4 pixels a frame (a person 200 pixels tall at 720p), hidden for 8 frames."""
    tracker = PeopleTracker(fps=30, buffer_s=1.0)
    seen = [tracker.update(np.array([walker(100 + 4 * s, 90)]), np.array([0.9])) for s in range(20)]
    for _ in range(8):
        assert tracker.update(np.zeros((0, 4)), np.zeros(0)) == []
    again = tracker.update(np.array([walker(100 + 4 * 28, 90)]), np.array([0.9]))
    assert again == seen[-1] == [1]


def test_no_boxes():
    assert PeopleTracker(fps=30).update(np.zeros((0, 4)), np.zeros(0)) == []
