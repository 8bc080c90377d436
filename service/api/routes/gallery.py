"""/gallery: enroll samples, list, read and delete subjects and samples."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from service.api.auth import ADMIN, CLIENT
from service.api.deps import SUBJECT_ID, RecognizerDep, SettingsDep, read_upload
from service.api.schemas import (
    BulkEnrolled,
    Deleted,
    SamplePublic,
    SubjectList,
    SubjectPublic,
    SubjectSummary,
)
from service.clips import ClipError
from service.recognition import Enrollment

router = APIRouter(prefix="/gallery", tags=["gallery"])
SubjectId = Annotated[str, Path(pattern=SUBJECT_ID)]


class BadMetadataError(ClipError):
    reason = "bad_metadata"


class BadManifestError(ClipError):
    reason = "bad_manifest"


class ManifestItem(BaseModel):
    """Who one clip of a bulk enrollment belongs to."""

    model_config = ConfigDict(extra="forbid")
    subject_id: str = Field(pattern=SUBJECT_ID)
    condition: str | None = Field(None, max_length=32)
    view: str | None = Field(None, max_length=32)
    metadata: dict = {}


MANIFEST = TypeAdapter(list[ManifestItem])


@router.post(
    "/subjects/{subject_id}/samples",
    dependencies=[ADMIN],
    status_code=201,
    response_model=SamplePublic,
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
    try:
        extra = json.loads(metadata) if metadata else {}
    except json.JSONDecodeError as error:
        raise BadMetadataError(f"metadata must be a JSON object: {error}") from error
    if not isinstance(extra, dict):
        raise BadMetadataError("metadata must be a JSON object")
    data = await read_upload(clip, settings)
    sample = await run_in_threadpool(recognizer.enroll, subject_id, data, condition, view, extra)
    return SamplePublic(**sample.__dict__)


@router.post("/samples", dependencies=[ADMIN], status_code=201, response_model=BulkEnrolled)
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


@router.get("/subjects", dependencies=[CLIENT], response_model=SubjectList)
def list_subjects(
    recognizer: RecognizerDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SubjectList:
    items, total = recognizer.store.list_subjects(offset, limit)
    summaries = [SubjectSummary(id=i, samples=n) for i, n in items]
    return SubjectList(items=summaries, total=total, offset=offset, limit=limit)


@router.get("/subjects/{subject_id}", dependencies=[CLIENT], response_model=SubjectPublic)
def get_subject(recognizer: RecognizerDep, subject_id: SubjectId) -> SubjectPublic:
    subject = recognizer.store.get_subject(subject_id)
    return SubjectPublic(
        id=subject.id, samples=[SamplePublic(**s.__dict__) for s in subject.samples]
    )


@router.delete("/subjects/{subject_id}", dependencies=[ADMIN], response_model=Deleted)
def delete_subject(recognizer: RecognizerDep, subject_id: SubjectId) -> Deleted:
    """Forget a subject: its silhouettes, embeddings and index entries."""
    return Deleted(subject_id=subject_id, samples_deleted=recognizer.delete_subject(subject_id))


@router.delete("/subjects/{subject_id}/samples/{sample_id}", dependencies=[ADMIN], status_code=204)
def delete_sample(recognizer: RecognizerDep, subject_id: SubjectId, sample_id: int) -> None:
    recognizer.delete_sample(subject_id, sample_id)
