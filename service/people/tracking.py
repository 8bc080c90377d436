"""Which box is who: ByteTrack (``cjm-byte-track``, a packaging of the official algorithm:
Kalman-filtered boxes, matched by IoU first on confident then on weak boxes; a track lost for up
to ``buffer`` frames can be found again).

Chosen after the packages the issue named could not be used here: supervision moved its
ByteTrack to ``trackers``, and both now require ``opencv-python`` (the GUI build, which
clashes with the service's ``opencv-python-headless``); ``norfair`` pins numpy<2; ``boxmot``
needs torch.

In  per frame: boxes float [n, 4] (x0, y0, x1, y1 in frame pixels) and scores [n].
Out per frame: a track id per box (``None``: not taken by a track this frame).
"""

from __future__ import annotations

import numpy as np

from service.people.limits import MissingExtraError

try:
    from cjm_byte_track.byte_tracker import BYTETracker
    from cjm_byte_track.matching import box_iou_batch
except ImportError:  # pragma: no cover - depends on the install
    BYTETracker = box_iou_batch = None


class PeopleTracker:
    def __init__(self, fps: float, buffer_s: float = 1.0):
        if BYTETracker is None:  # pragma: no cover
            raise MissingExtraError("tracking needs cjm-byte-track: pip install 'gaitlab[video]'")
        # ByteTrack's defaults for people (MOT17): a box starts a track above 0.6, tracks
        # match at IoU cost under 0.8; the buffer is counted in frames at 30 fps
        self.tracker = BYTETracker(
            track_thresh=0.5, track_buffer=round(30 * buffer_s), match_thresh=0.8, frame_rate=30
        )

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> list[int | None]:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        results = np.hstack([boxes, np.asarray(scores, np.float64).reshape(-1, 1)])
        size = (1, 1)  # boxes are already in frame pixels: no rescaling
        tracks = [t for t in self.tracker.update(results, size, size) if t.is_activated]
        frame = self.tracker.frame_id
        tracks = [t for t in tracks if t.frame_id == frame]  # matched in this frame
        owners: list[int | None] = [None] * len(boxes)
        if not tracks or not len(boxes):
            return owners
        # ByteTrack reports its filtered boxes, not which input box each track took: the
        # box it took this frame is the one it overlaps most (one box per track)
        overlap = box_iou_batch(np.array([t.tlbr for t in tracks]), boxes)
        for _ in range(min(overlap.shape)):
            t, b = np.unravel_index(np.argmax(overlap), overlap.shape)
            if overlap[t, b] <= 0.3:
                break
            owners[b] = int(tracks[t].track_id)
            overlap[t, :] = -1
            overlap[:, b] = -1
        return owners
