"""``tracks.json`` and the per-track clips: the pipeline's output, which other tools read.

    DIR/tracks.json  {"video": {"frames", "fps", "width", "height", "rotation"},
                      "tracks": [{"id", "frames", "boxes", "clip", "clip_frames", "thumbnail"}],
                      "dropped": [{"id", "frames", "boxes", "reason"}]}
    DIR/track-N.npy  uint8 [T, 64, 44]: the silhouettes, in the input contract
    DIR/track-N.jpg  the person's largest whole view (for pages and reports)

``frames`` lists every frame the person was tracked in, ``boxes`` one ``[x0, y0, x1, y1]`` per
listed frame in the pixels of the frames as ``cv2.VideoCapture`` decodes them by default;
``clip_frames`` lists the frames whose silhouettes are in the clip (the person wholly in view),
so ``len(clip_frames) == T``. ``rotation``: degrees clockwise that made most people upright.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from models.contract import MODEL_SHAPE
from service.clip_limits import CorruptClipError

if TYPE_CHECKING:  # the pipeline (and its tracker) is imported where the video is processed
    from service.people.pipeline import People

INDEX = "tracks.json"


def most_common_turns(people: People) -> int:
    """The quarter turns that made most people upright, counted over every tracked frame."""
    votes = Counter(turns for track in people.tracks for turns in track.turns)
    return votes.most_common(1)[0][0] if votes else 0


def write_tracks(people: People, fps: float, out: Path) -> dict:
    """Write ``out/tracks.json``, the clips and thumbnails; the document written."""
    out.mkdir(parents=True, exist_ok=True)
    tracks, dropped = [], []
    for track in people.tracks:
        base = {"id": track.id, "frames": track.frames, "boxes": track.boxes}
        if track.dropped is not None:
            dropped.append({**base, "reason": track.dropped})
            continue
        clip, thumbnail = f"track-{track.id}.npy", f"track-{track.id}.jpg"
        np.save(out / clip, track.clip(), allow_pickle=False)
        cv2.imwrite(str(out / thumbnail), track.thumbnail, [cv2.IMWRITE_JPEG_QUALITY, 85])
        tracks.append(
            {**base, "clip": clip, "clip_frames": track.clip_frames, "thumbnail": thumbnail}
        )
    width, height = people.size
    document = {
        "video": {
            "frames": people.frames,
            "fps": round(fps, 3),
            "width": width,
            "height": height,
            "rotation": 90 * most_common_turns(people),
        },
        "tracks": tracks,
        "dropped": dropped,
    }
    (out / INDEX).write_text(json.dumps(document))
    return document


@dataclass(frozen=True)
class TrackFiles:
    document: dict
    clips: dict[int, np.ndarray]  # track id → uint8 [T, 64, 44]
    thumbnails: dict[int, bytes]  # track id → JPEG


def read_tracks(folder: Path, max_frames: int) -> TrackFiles:
    """Read what ``write_tracks`` wrote, checking every shape (no pickle)."""
    try:
        document = json.loads((folder / INDEX).read_text())
        clips, thumbnails = {}, {}
        for track in document["tracks"]:
            track_id = int(track["id"])
            if len(track["frames"]) != len(track["boxes"]) or len(track["frames"]) > max_frames:
                raise ValueError(f"track {track_id}: frames and boxes disagree")
            clip = np.load(folder / Path(track["clip"]).name, allow_pickle=False)
            if clip.dtype != np.uint8 or clip.shape[1:] != MODEL_SHAPE or len(clip) > max_frames:
                raise ValueError(f"track {track_id}: a clip of {clip.dtype} {clip.shape}")
            clips[track_id] = clip
            thumbnails[track_id] = (folder / Path(track["thumbnail"]).name).read_bytes()
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CorruptClipError(f"the video's tracks could not be read: {error}") from error
    return TrackFiles(document, clips, thumbnails)
