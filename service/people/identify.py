"""The service's side of the video pipeline: identify every person of an uploaded video, or
enroll one of them. The pipeline runs in its sandbox (``sandbox``); each kept track's clip is
then identified or enrolled by the ``Recognizer`` exactly as an uploaded ``.npy`` clip would be
(same decoding, limits, decision and errors)."""

from __future__ import annotations

import importlib.util
import io
import threading
from dataclasses import dataclass

import numpy as np

from service.clip_limits import CorruptClipError, UnsupportedFormatError
from service.people.assets import MODELS, models_dir
from service.people.limits import (
    TrackNotFoundError,
    VideoBusyError,
    VideoLimits,
    VideoUnavailableError,
)
from service.people.sandbox import find_people_sandboxed
from service.people.tracks_file import TrackFiles
from service.recognition import Identification, Recognizer
from service.video import is_video


def as_npy(clip: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, clip, allow_pickle=False)
    return out.getvalue()


@dataclass(frozen=True)
class TrackIdentification:
    track: dict  # as in tracks.json
    thumbnail: bytes  # JPEG
    result: Identification


@dataclass(frozen=True)
class VideoIdentification:
    video: dict
    tracks: list[TrackIdentification]
    dropped: list[dict]
    timings: dict[str, float]


class VideoPeople:
    """Runs uploads through the sandboxed pipeline, at most ``slots`` at a time (each takes a
    core for seconds; more wait for nothing: they get a 429)."""

    def __init__(self, limits: VideoLimits, slots: int = 2):
        self.limits = limits
        self._slots = threading.BoundedSemaphore(slots)
        self.slots = slots

    def available(self) -> None:
        """``VideoUnavailableError`` unless LiteRT, the tracker and the models are installed."""
        missing = [m for m in ("ai_edge_litert", "cjm_byte_track") if not _installed(m)]
        missing += [n for n in MODELS if not (models_dir() / n).is_file()]
        if missing:
            raise VideoUnavailableError(
                "this service cannot read colour video: install the video extra "
                f"(bash scripts/install.sh video); missing: {', '.join(missing)}"
            )

    def tracks(self, data: bytes, turns: int | None) -> tuple[TrackFiles, dict[str, float]]:
        if not data:
            raise CorruptClipError("the upload is empty")
        if not is_video(data):  # by its first bytes: nothing else is started for it
            raise UnsupportedFormatError(
                "not a video: send MP4/MOV, Matroska/WebM, AVI, MPEG, Ogg or FLV"
            )
        self.available()
        if not self._slots.acquire(blocking=False):
            raise VideoBusyError(f"{self.slots} videos are being processed; retry shortly")
        try:
            return find_people_sandboxed(data, self.limits, turns)
        finally:
            self._slots.release()

    def identify(
        self,
        recognizer: Recognizer,
        data: bytes,
        turns: int | None = None,
        top_k: int = 5,
        threshold: float | None = None,
        fpir: float | None = None,
    ) -> VideoIdentification:
        files, timings = self.tracks(data, turns)
        found = [
            TrackIdentification(
                track,
                files.thumbnails[track["id"]],
                recognizer.identify(as_npy(files.clips[track["id"]]), top_k, threshold, fpir=fpir),
            )
            for track in files.document["tracks"]
        ]
        document = files.document
        return VideoIdentification(document["video"], found, document["dropped"], timings)

    def enroll(
        self,
        recognizer: Recognizer,
        data: bytes,
        track_id: int,
        subject_id: str,
        turns: int | None = None,
        condition: str | None = None,
        view: str | None = None,
        metadata: dict | None = None,
    ):
        """Enroll track ``track_id`` of the video (as numbered by ``identify``)."""
        files, _ = self.tracks(data, turns)
        if track_id not in files.clips:
            kept = ", ".join(str(i) for i in sorted(files.clips)) or "none"
            dropped = {d["id"]: d["reason"] for d in files.document["dropped"]}
            why = f" (dropped: {dropped[track_id]})" if track_id in dropped else ""
            raise TrackNotFoundError(f"no usable track {track_id}{why}; usable tracks: {kept}")
        clip = as_npy(files.clips[track_id])
        return recognizer.enroll(subject_id, clip, condition, view, metadata)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
