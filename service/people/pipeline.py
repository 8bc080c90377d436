"""The video pipeline: frames → people tracked → one silhouette clip per person.

Per frame (stage names as ``bench/video.py`` prints them):

- **detect**, every ``detect_every`` frames: the person detector, for people not yet followed;
- **segment**: the landmark model on each person's square (from the detector, or carried over
  from that person's landmarks in the previous frame); people found twice are kept once;
- **track**: ByteTrack gives each person's box its track id;
- **normalise**: a whole mask (the person entirely in view) becomes a 64×44 model frame
  through ``models.silhouette``, the same function as every other upload.

Then tracks too short, or with too few whole silhouettes, are dropped with the reason. Track
ids are renumbered 1, 2, … in order of first appearance (kept and dropped alike).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from models.silhouette import normalise_silhouette
from service.people.detector import PoseDetector
from service.people.segmenter import PoseSegmenter, Region, Segment
from service.people.tracking import PeopleTracker

STAGES = ("decode", "detect", "segment", "track", "normalise")
THUMB_HEIGHT = 128


@dataclass(frozen=True)
class Options:
    detect_every: int = 5  # frames; a person entering is found within this many
    fine_every: int = 15  # frames; the detector also searches finer squares (small people)
    turns: int | None = None  # force clockwise quarter turns for everyone (None: per person)
    min_silhouettes: int = 15  # whole silhouettes a track needs (half a gait cycle at 30 fps)
    duplicate_iou: float = 0.5  # two people's boxes overlapping more are one person
    max_people: int = 10  # followed at once: bounds the work per frame
    ahead: bool = True  # decode and detect in a thread of their own (False: all in one)


@dataclass
class Track:
    id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    clip_frames: list[int] = field(default_factory=list)  # frames of the silhouettes
    silhouettes: list[np.ndarray] = field(default_factory=list)  # uint8 [64, 44] each
    turns: list[int] = field(default_factory=list)
    thumbnail: np.ndarray | None = None  # BGR, the person's largest whole view
    mask: np.ndarray | None = None  # uint8 [256, 256]: the person's square mask in that frame
    thumbnail_frame: int = -1
    thumbnail_height: float = 0.0
    dropped: str | None = None

    def clip(self) -> np.ndarray:
        """uint8 [T, 64, 44]."""
        if not self.silhouettes:
            return np.zeros((0, 64, 44), np.uint8)
        return np.stack(self.silhouettes)


@dataclass
class People:
    tracks: list[Track]  # kept and dropped, by id; ``dropped`` says why
    frames: int
    size: tuple[int, int]  # width, height of the frames as decoded
    timings: dict[str, float]  # seconds per stage

    @property
    def kept(self) -> list[Track]:
        return [t for t in self.tracks if t.dropped is None]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _is_new(hip: np.ndarray, regions: list[Region]) -> bool:
    """A detection is someone new unless its hips lie near a square already followed."""
    return all(np.linalg.norm(hip - np.array(r.centre)) > 0.2 * r.side for r in regions)


def _distinct(segments: list[Segment], iou: float) -> list[Segment]:
    """Squares that converged on the same person: keep the first (followed before detected)."""
    kept: list[Segment] = []
    for s in segments:
        if all(_overlap(s.box, k.box) <= iou for k in kept):
            kept.append(s)
    return kept


class _Ahead:
    """Decoding and detection of the next frames, in a thread of their own (``options.ahead``;
    OpenCV and LiteRT release the GIL) while the caller segments and tracks the current frame:
    the two halves of a frame's work overlap on two cores. Yields (index, frame BGR, frame RGB,
    detections or None); an error in the thread is raised in the caller."""

    _END = object()

    def __init__(self, frames, detector: PoseDetector, options: Options, timings: dict):
        self.frames, self.detector, self.options, self.timings = frames, detector, options, timings
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.stop = threading.Event()

    def _prepared(self):
        clock = time.perf_counter()
        for index, frame in self.frames:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            now = time.perf_counter()
            self.timings["decode"] += now - clock
            detections = None
            if index % self.options.detect_every == 0:
                fine = index % self.options.fine_every == 0
                detections = self.detector(rgb, fine)
                self.timings["detect"] += time.perf_counter() - now
            yield index, frame, rgb, detections
            clock = time.perf_counter()

    def _run(self) -> None:
        try:
            for item in self._prepared():
                self._put(item)
                if self.stop.is_set():
                    return
            self._put(self._END)
        except BaseException as error:  # handed to the caller
            self._put(error)

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        if not self.options.ahead:
            yield from self._prepared()
            return
        thread = threading.Thread(target=self._run, name="video-ahead", daemon=True)
        thread.start()
        try:
            while (item := self.queue.get()) is not self._END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop.set()
            thread.join()


def find_people(
    frames: Iterable[tuple[int, np.ndarray]],
    detector: PoseDetector,
    segmenter: PoseSegmenter,
    fps: float,
    options: Options = Options(),
) -> People:
    """``frames``: (index, uint8 [H, W, 3] BGR) in order, as ``VideoSource`` yields them.
    Stage timings are the time each stage worked (decode and detect overlap the others)."""
    timings = dict.fromkeys(STAGES, 0.0)
    tracker = PeopleTracker(fps)
    tracks: dict[int, Track] = {}
    regions: list[Region] = []  # where the people of the last frame should be now
    count, size = 0, (0, 0)
    for index, frame, rgb, detections in _Ahead(frames, detector, options, timings):
        count, size = count + 1, (frame.shape[1], frame.shape[0])
        now = time.perf_counter()
        for d in detections or ():
            if _is_new(d.hip, regions) and len(regions) < options.max_people:
                regions.append(Region.around(d.hip, d.top, options.turns))
        segments = [segmenter(rgb, region) for region in regions]
        segments = _distinct([s for s in segments if s.found], options.duplicate_iou)
        timings["segment"] += (clock := time.perf_counter()) - now
        now = clock
        owners = tracker.update(
            np.array([s.box for s in segments]), np.array([s.presence for s in segments])
        )
        timings["track"] += (clock := time.perf_counter()) - now
        now = clock
        for segment, owner in zip(segments, owners, strict=True):
            if owner is not None:
                _record(tracks.setdefault(owner, Track(owner)), index, frame, segment)
        regions = [
            s.next_region
            if options.turns is None
            else Region(s.next_region.centre, s.next_region.side, options.turns)
            for s in segments
        ]
        timings["normalise"] += time.perf_counter() - now
    return People(_finish(tracks, options), count, size, timings)


def _record(track: Track, index: int, frame: np.ndarray, segment: Segment) -> None:
    track.frames.append(index)
    track.boxes.append([round(float(v), 1) for v in segment.box])
    track.turns.append(segment.next_region.turns)
    if not segment.whole:
        return
    silhouette = normalise_silhouette(segment.mask)
    if silhouette is None:
        return
    track.clip_frames.append(index)
    track.silhouettes.append(silhouette)
    x0, y0, x1, y1 = segment.box.astype(int)
    if y1 - y0 > track.thumbnail_height:
        crop = frame[max(y0, 0) : y1, max(x0, 0) : x1]
        scale = THUMB_HEIGHT / max(crop.shape[0], 1)
        width = max(1, round(crop.shape[1] * scale))
        track.thumbnail = cv2.resize(crop, (width, THUMB_HEIGHT), interpolation=cv2.INTER_AREA)
        track.mask, track.thumbnail_frame = segment.mask, index
        track.thumbnail_height = y1 - y0


def _finish(tracks: dict[int, Track], options: Options) -> list[Track]:
    """Renumber 1, 2, … by first appearance; drop what cannot be identified, saying why."""
    ordered = sorted(tracks.values(), key=lambda t: t.frames[0])
    for number, track in enumerate(ordered, 1):
        track.id = number
        whole = len(track.silhouettes)
        if whole < options.min_silhouettes:
            track.dropped = (
                f"{whole} frames with the whole person in view (of {len(track.frames)} "
                f"tracked); at least {options.min_silhouettes} are needed"
            )
    return ordered
