"""Response bodies (pydantic)."""

from __future__ import annotations

from pydantic import BaseModel


class Hit(BaseModel):
    subject_id: str
    sample_id: int
    score: float


class ProbePictures(BaseModel):
    """The probe as the service saw it (normalised silhouettes), as PNG data URLs."""

    gei: str  # data:image/png;base64,… — the mean frame, 64×44
    strip: str  # up to 12 frames side by side


class IdentifyResponse(BaseModel):
    decision: str | None
    threshold: float
    hits: list[Hit]
    frames: int
    model_version: str
    probe: ProbePictures | None = None  # with ?pictures=true

    @classmethod
    def of(cls, result, probe: ProbePictures | None = None) -> IdentifyResponse:
        """From a ``service.recognition.Identification`` (the route's and the fast lane's)."""
        return cls(
            decision=result.decision,
            threshold=result.threshold,
            hits=[
                Hit(subject_id=h.subject_id, sample_id=h.sample_id, score=h.score)
                for h in result.hits
            ],
            frames=result.frames,
            model_version=result.model_version,
            probe=probe,
        )


class VerifyResponse(BaseModel):
    subject_id: str
    score: float
    accepted: bool
    threshold: float
    frames: int
    model_version: str
    probe: ProbePictures | None = None  # with ?pictures=true


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
