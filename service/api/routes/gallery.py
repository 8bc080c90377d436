"""/gallery: enroll samples, list, read and delete subjects and samples."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from service.api.deps import SUBJECT_ID, RecognizerDep, SettingsDep, read_upload
from service.api.schemas import (
    Deleted,
    SamplePublic,
    SubjectList,
    SubjectPublic,
    SubjectSummary,
)
from service.clips import ClipError

router = APIRouter(prefix="/gallery", tags=["gallery"])
SubjectId = Annotated[str, Path(pattern=SUBJECT_ID)]


class BadMetadataError(ClipError):
    reason = "bad_metadata"


@router.post("/subjects/{subject_id}/samples", status_code=201, response_model=SamplePublic)
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


@router.get("/subjects", response_model=SubjectList)
def list_subjects(
    recognizer: RecognizerDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SubjectList:
    items, total = recognizer.store.list_subjects(offset, limit)
    summaries = [SubjectSummary(id=i, samples=n) for i, n in items]
    return SubjectList(items=summaries, total=total, offset=offset, limit=limit)


@router.get("/subjects/{subject_id}", response_model=SubjectPublic)
def get_subject(recognizer: RecognizerDep, subject_id: SubjectId) -> SubjectPublic:
    subject = recognizer.store.get_subject(subject_id)
    return SubjectPublic(
        id=subject.id, samples=[SamplePublic(**s.__dict__) for s in subject.samples]
    )


@router.delete("/subjects/{subject_id}", response_model=Deleted)
def delete_subject(recognizer: RecognizerDep, subject_id: SubjectId) -> Deleted:
    """Forget a subject: its silhouettes, embeddings and index entries."""
    return Deleted(subject_id=subject_id, samples_deleted=recognizer.delete_subject(subject_id))


@router.delete("/subjects/{subject_id}/samples/{sample_id}", status_code=204)
def delete_sample(recognizer: RecognizerDep, subject_id: SubjectId, sample_id: int) -> None:
    recognizer.delete_sample(subject_id, sample_id)
