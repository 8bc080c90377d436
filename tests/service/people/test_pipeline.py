"""The video pipeline on real footage (tracking through the hall, the sideways lobby, tracks
dropped with their reason) and on generated video."""

from __future__ import annotations

import cv2
import numpy as np

from models.contract import MODEL_SHAPE
from service.people.limits import VideoLimits
from service.people.pipeline import Options, Track, _finish, find_people
from service.people.source import VideoSource
from tests.service.people.conftest import blank_video, cut, real_video


def run(path, models, options: Options | None = None):
    source = VideoSource(str(path), VideoLimits())
    return find_people(source, *models, source.info.fps, options or Options())


def torso_redness(path, track: Track) -> np.ndarray:
    """Red minus green of the middle of each box's chest: B's orange-brown jacket is red,
    C's olive one is not."""
    capture, frames = cv2.VideoCapture(str(path)), {}
    while (frame := capture.read()[1]) is not None:
        frames[len(frames)] = frame
    capture.release()
    values = []
    for index, (x0, y0, x1, y1) in zip(track.frames, track.boxes, strict=True):
        x0, y0, x1, y1 = (int(v) for v in (x0, y0, x1, y1))
        height, width = y1 - y0, x1 - x0
        chest = frames[index][y0 + height // 4 : y0 + height * 9 // 20, x0 + width * 3 // 10 :]
        chest = chest[:, : max(1, width * 2 // 5)]
        values.append(float(chest[..., 2].mean()) - float(chest[..., 1].mean()))
    return np.array(values)


def test_two_people_in_the_hall_keep_their_tracks(models, hall_cut):
    people = run(hall_cut, models)
    assert len(people.kept) == 2, [(t.id, t.dropped) for t in people.tracks]
    first, second = people.kept
    assert first.frames[0] < 5 < 10 < second.frames[0] < 25  # C is there; B walks in
    for track in people.kept:
        assert len(track.frames) == len(track.boxes) == len(set(track.frames))
        assert track.clip().shape[1:] == MODEL_SHAPE
        assert len(track.clip()) >= 15
        assert track.clip_frames == sorted(track.clip_frames)
    # no swap: each half of each track is the same person (C olive, then B orange-brown)
    for track, red in ((first, False), (second, True)):
        redness = torso_redness(hall_cut, track)
        for half in np.array_split(redness, 2):
            assert (np.median(half) > 28) == red, (track.id, np.median(half))


def upright(clip: np.ndarray) -> float:
    """The share of a clip's columns that hold silhouette: about a third for a person standing,
    all of them for a person lying (cropped to their rows, they are stretched across)."""
    return float((clip.max(axis=1) > 0).mean())


def test_a_sideways_video_is_turned_upright_automatically(models, tmp_path):
    path = cut(real_video("lobby-two-walkers-rotated.mp4"), 120, 175, tmp_path / "lobby.mp4")
    people = run(path, models)
    assert people.kept
    for track in people.kept:
        assert set(track.turns) == {1}  # heads to the left: a quarter turn clockwise
        assert upright(track.clip()) < 0.6
        x0, y0, x1, y1 = np.array(track.boxes).mean(0)
        assert x1 - x0 > y1 - y0  # boxes stay in the pixels of the frames as decoded
    forced = run(path, models, Options(turns=1))
    assert [t.frames for t in forced.kept] == [t.frames for t in people.kept]


def test_a_person_walking_out_of_the_picture_is_dropped_with_the_reason(models, tmp_path):
    path = cut(real_video("corridor-grey-hoodie-front.mp4"), 118, 180, tmp_path / "end.mp4")
    people = run(path, models)
    assert people.tracks
    assert not people.kept
    for track in people.tracks:
        assert "whole person in view" in track.dropped
        assert f"at least {Options().min_silhouettes}" in track.dropped


def test_short_tracks_are_dropped_and_ids_follow_first_appearance():
    late = Track(7, frames=[30, 31], boxes=[[0, 0, 1, 1]] * 2)
    early = Track(3, frames=list(range(20)), boxes=[[0, 0, 1, 1]] * 20)
    early.silhouettes = [np.zeros(MODEL_SHAPE, np.uint8)] * 20
    tracks = _finish({7: late, 3: early}, Options(min_silhouettes=15))
    assert [(t.id, t.dropped is None) for t in tracks] == [(1, True), (2, False)]
    assert tracks[1].dropped.startswith("0 frames with the whole person in view (of 2 tracked)")


def test_a_video_without_people(models, tmp_path):
    people = run(blank_video(tmp_path / "empty.mp4", 12, 320, 240), models)
    assert (people.tracks, people.frames, people.size) == ([], 12, (320, 240))
    assert set(people.timings) == {"decode", "detect", "segment", "track", "normalise"}
