"""/gallery: enroll samples, list, read and delete subjects and samples."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from service.api.deps import SUBJECT_ID, RecognizerDep, SettingsDep, read_upload
from service.api.errors import error_responses
from service.api.policy import declare
from service.api.schemas import (
    BulkEnrolled,
    Deleted,
    SamplePublic,
    SubjectList,
    SubjectPublic,
    SubjectSummary,
)
from service.errors import ServiceError
from service.gallery.store import InvalidMetadataError
from service.recognition import Enrollment

router = APIRouter(prefix="/gallery", tags=["gallery"], responses=error_responses(401, 422, 503))
SubjectId = Annotated[str, Path(pattern=SUBJECT_ID)]
SampleId = Annotated[int, Path(ge=1, le=2**62)]
MAX_OFFSET = 2**31  # far past any gallery; keeps SQLite's 64-bit integers from overflowing
UPLOAD_ERRORS = error_responses(400, 403, 408, 413, 415, 429)


class BadManifestError(ServiceError):
    code = "bad_manifest"


class ManifestItem(BaseModel):
    """Who one clip of a bulk enrollment belongs to."""

    model_config = ConfigDict(extra="forbid")
    subject_id: str = Field(pattern=SUBJECT_ID)
    condition: str | None = Field(None, max_length=32)
    view: str | None = Field(None, max_length=32)
    metadata: dict = {}


MANIFEST = TypeAdapter(list[ManifestItem])


def parse_metadata(metadata: str | None) -> dict:
    """A form's ``metadata`` field (a JSON object, or nothing)."""
    try:
        return json.loads(metadata) if metadata else {}
    except json.JSONDecodeError as error:
        raise InvalidMetadataError(f"metadata must be a JSON object: {error}") from error
    except RecursionError:
        raise InvalidMetadataError("metadata is nested too deeply") from None


@router.post(
    "/subjects/{subject_id}/samples",
    **declare("admin", embeds=True, body="one_clip"),
    status_code=201,
    response_model=SamplePublic,
    responses=UPLOAD_ERRORS,
)
async def enroll(
    recognizer: RecognizerDep,
    settings: SettingsDep,
    subject_id: SubjectId,
    clip: Annotated[UploadFile, File()],
    condition: Annotated[str | None, Form(max_length=32)] = None,
    view: Annotated[str | None, Form(max_length=32)] = None,
    metadata: Annotated[str | None, Form(max_length=4096, description="a JSON object")] = None,
) -> SamplePublic:
    """Enroll one clip for ``subject_id`` (created if new). Answered once it is on disk."""
    extra = parse_metadata(metadata)
    data = await read_upload(clip, settings)
    sample = await run_in_threadpool(recognizer.enroll, subject_id, data, condition, view, extra)
    return SamplePublic(**sample.__dict__)


@router.post(
    "/samples",
    **declare("admin", embeds=True, body="large"),
    status_code=201,
    response_model=BulkEnrolled,
    responses=UPLOAD_ERRORS,
)
async def enroll_many(
    recognizer: RecognizerDep,
    settings: SettingsDep,
    clips: Annotated[list[UploadFile], File(description="the clips, in manifest order")],
    manifest: Annotated[
        str,
        Form(
            max_length=1_000_000,
            description='a JSON list, one object per clip: {"subject_id", "condition", "view", '
            '"metadata"} (all but subject_id optional)',
        ),
    ],
) -> BulkEnrolled:
    """Enroll many clips in one request, all or none: every clip is checked first (an error
    names the clip by its position), then they are embedded in batches and stored in one
    transaction. Answered once they are on disk."""
    try:
        items = MANIFEST.validate_json(manifest)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'manifest'}: {e['msg']}" for e in error.errors()
        )
        raise BadManifestError(f"manifest: {problems}") from error
    if len(items) != len(clips):
        raise BadManifestError(f"{len(clips)} clips but {len(items)} manifest entries")
    if len(clips) > settings.max_bulk_clips:
        raise BadManifestError(f"at most {settings.max_bulk_clips} clips per request")
    enrollments = [
        Enrollment(
            item.subject_id,
            await read_upload(clip, settings),
            item.condition,
            item.view,
            item.metadata,
        )
        for item, clip in zip(items, clips, strict=True)
    ]
    samples = await run_in_threadpool(recognizer.enroll_many, enrollments)
    return BulkEnrolled(samples=[SamplePublic(**s.__dict__) for s in samples])


@router.get("/subjects", **declare("client"), response_model=SubjectList)
def list_subjects(
    recognizer: RecognizerDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    q: Annotated[str, Query(max_length=64, description="ids containing this")] = "",
) -> SubjectList:
    """Subjects in id order, ``limit`` at a time; ``q`` keeps those whose id contains it."""
    items, total = recognizer.store.list_subjects(offset, limit, q)
    summaries = [SubjectSummary(id=i, samples=n) for i, n in items]
    return SubjectList(items=summaries, total=total, offset=offset, limit=limit)


@router.get(
    "/subjects/{subject_id}",
    **declare("client"),
    response_model=SubjectPublic,
    responses=error_responses(404),
)
def get_subject(recognizer: RecognizerDep, subject_id: SubjectId) -> SubjectPublic:
    subject = recognizer.store.get_subject(subject_id)
    return SubjectPublic(
        id=subject.id, samples=[SamplePublic(**s.__dict__) for s in subject.samples]
    )


@router.delete(
    "/subjects/{subject_id}",
    **declare("admin"),
    response_model=Deleted,
    responses=error_responses(403, 404),
)
def delete_subject(recognizer: RecognizerDep, subject_id: SubjectId) -> Deleted:
    """Forget a subject: its silhouettes, embeddings and index entries."""
    return Deleted(subject_id=subject_id, samples_deleted=recognizer.delete_subject(subject_id))


@router.delete(
    "/subjects/{subject_id}/samples/{sample_id}",
    **declare("admin"),
    status_code=204,
    responses=error_responses(403, 404),
)
def delete_sample(recognizer: RecognizerDep, subject_id: SubjectId, sample_id: SampleId) -> None:
    recognizer.delete_sample(subject_id, sample_id)


PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}


@router.get(
    "/samples/{sample_id}/gei.png",
    **declare("client"),
    response_class=Response,
    responses={**PNG, **error_responses(404)},
)
def sample_gei(recognizer: RecognizerDep, sample_id: SampleId) -> Response:
    """A stored sample's gait energy image (the mean of its normalised frames), 44×64 PNG."""
    return _png(recognizer.picture(sample_id, "gei"))


@router.get(
    "/samples/{sample_id}/strip.png",
    **declare("client"),
    response_class=Response,
    responses={**PNG, **error_responses(404)},
)
def sample_strip(recognizer: RecognizerDep, sample_id: SampleId) -> Response:
    """Up to 12 of a stored sample's normalised frames, evenly spaced, side by side, PNG."""
    return _png(recognizer.picture(sample_id, "strip"))


def _png(data: bytes) -> Response:
    # private: pictures are behind the same keys as the gallery they show
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})
