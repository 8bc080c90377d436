"""Response bodies (pydantic)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from pydantic import BaseModel, Field


class Hit(BaseModel):
    subject_id: str
    sample_id: int = Field(description="the subject's best-scoring sample")
    score: float = Field(
        description="mean part cosine similarity of the probe and that sample, in [-1, 1]"
    )
    views: int = Field(
        description="how many views the decision counts for this subject (distinct enrolled "
        "views, each sample without a view counting as one)"
    )
    stranger_chance: float | None = Field(
        description="the share of strangers' searches of this gallery that would reach this "
        "score against someone: the FPIR at which this hit would be accepted (comparable across "
        "hits and galleries; null when the model's card has no identification curves)"
    )


class ProbePictures(BaseModel):
    """The probe as the service saw it (normalised silhouettes), as PNG data URLs."""

    gei: str  # data:image/png;base64,… — the mean frame, 64×44
    strip: str  # up to 12 frames side by side


class Rule(BaseModel):
    """What the decision was set for."""

    basis: Literal["fpir", "pair_far", "threshold"] = Field(
        description="fpir: at most ``fpir`` of strangers' searches of this gallery are given a "
        "name (the default, from the model card's stranger-rate curves); pair_far: the card's "
        "per-pair threshold (a card without identification curves; a search of many subjects "
        "names strangers more often than ``far``); threshold: the request's own score"
    )
    threshold: float = Field(description="the score the top subject had to reach")
    fpir: float | None = Field(description="the promised share of strangers named (basis fpir)")
    far: float | None = Field(description="the per-pair false accept rate (basis pair_far)")
    gallery_subjects: int = Field(description="enrolled subjects the decision was set for")


class IdentifyResponse(BaseModel):
    decision: str | None = Field(
        description="the top subject if its score reaches the threshold, else null: nobody "
        "enrolled (as far as the promised rate allows)"
    )
    threshold: float = Field(description="the score the top subject had to reach (rule)")
    rule: Rule
    margin: float | None = Field(
        description="the top subject's score minus the next subject's (null with fewer than 2)"
    )
    hits: list[Hit] = Field(description="subjects by their best sample, best first")
    frames: int
    model_version: str
    probe: ProbePictures | None = None  # with ?pictures=true

    @classmethod
    def of(cls, result, probe: ProbePictures | None = None) -> IdentifyResponse:
        """From a ``service.recognition.Identification``."""
        return cls(
            decision=result.decision,
            threshold=result.threshold,
            rule=Rule(**asdict(result.rule)),
            margin=result.margin,
            hits=[Hit(**asdict(h)) for h in result.hits],
            frames=result.frames,
            model_version=result.model_version,
            probe=probe,
        )


class VerifyResponse(BaseModel):
    subject_id: str
    score: float = Field(description="the probe against the subject's best sample")
    accepted: bool
    threshold: float
    rule: Rule
    false_accept_chance: float | None = Field(
        description="the share of stranger pairs (a walk against one sample, any view) that "
        "reach this score: the per-pair FAR at which it would be accepted (null when the "
        "model's card has no curve)"
    )
    frames: int
    model_version: str
    probe: ProbePictures | None = None  # with ?pictures=true

    @classmethod
    def of(cls, result, probe: ProbePictures | None = None) -> VerifyResponse:
        """From a ``service.recognition.Verification``."""
        return cls(
            subject_id=result.subject_id,
            score=result.score,
            accepted=result.accepted,
            threshold=result.threshold,
            rule=Rule(**asdict(result.rule)),
            false_accept_chance=result.false_accept_chance,
            frames=result.frames,
            model_version=result.model_version,
            probe=probe,
        )


class SamplePublic(BaseModel):
    id: int
    subject_id: str
    created_at: float  # when it was enrolled, seconds since the epoch
    frames: int
    condition: str | None = None
    view: str | None = None
    metadata: dict = {}


class BulkEnrolled(BaseModel):
    samples: list[SamplePublic]


class SubjectPublic(BaseModel):
    id: str
    samples: list[SamplePublic]


class SubjectSummary(BaseModel):
    id: str
    samples: int


class SubjectList(BaseModel):
    items: list[SubjectSummary]
    total: int
    offset: int
    limit: int


class Deleted(BaseModel):
    subject_id: str
    samples_deleted: int


class ErrorBody(BaseModel):
    error: str
    detail: str


class VideoInfo(BaseModel):
    """The video as decoded (``cv2.VideoCapture``'s defaults), as in ``tracks.json``."""

    frames: int
    fps: float
    width: int
    height: int
    rotation: int  # degrees clockwise that made most people upright


class VideoTrack(BaseModel):
    """One person followed through the video, and who they are."""

    id: int
    frames: list[int]  # every frame the person was tracked in
    boxes: list[list[float]]  # [x0, y0, x1, y1] per listed frame, decoded pixels
    clip_frames: list[int]  # the frames of the silhouettes identified (whole person in view)
    identify: IdentifyResponse  # the answer for the person's silhouettes, as POST /identify
    thumbnail: str | None = None  # with ?pictures=true: data:image/jpeg;base64,…


class DroppedTrack(BaseModel):
    id: int
    frames: list[int]
    boxes: list[list[float]]
    reason: str


class VideoIdentifyResponse(BaseModel):
    video: VideoInfo
    tracks: list[VideoTrack]
    dropped: list[DroppedTrack]
