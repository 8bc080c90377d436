"""The service's error taxonomy: every error a client can cause, raised where it is understood.

Each class carries the HTTP ``status`` it answers with and a short machine-readable ``code``;
the API boundary (``service.api.errors``) turns any of them into the one JSON error body
``{"error": code, "detail": what was wrong}`` without knowing the classes. ::

    ServiceError                     422 invalid_request
    ├── ClipError                    422 invalid_clip        (service.clips)
    │   ├── UnsupportedFormatError   415 unsupported_format
    │   ├── ClipTooLargeError        413 clip_too_large
    │   ├── CorruptClipError         422 corrupt_clip
    │   ├── UnsafeArchiveError       422 unsafe_archive
    │   ├── TooFewFramesError        422 too_few_frames      (service.recognition)
    │   └── VideoError               422 invalid_video       (service.people.limits)
    │       └── TrackNotFoundError   404 track_not_found
    ├── InvalidMetadataError         422 bad_metadata        (service.gallery.store)
    ├── BadManifestError             422 bad_manifest        (service.api.routes.gallery)
    ├── NotFoundError                404 not_found
    │   ├── SubjectNotFoundError     404 subject_not_found   (service.gallery.store)
    │   └── SampleNotFoundError      404 sample_not_found
    ├── StoreUnavailableError        503 store_unavailable   (service.gallery.store)
    ├── StaleModelError              503 model_changed       (service.gallery.store)
    ├── NoThresholdError             422 no_threshold        (service.decisions)
    ├── VideoUnavailableError        503 video_unavailable   (service.people.limits)
    ├── VideoBusyError               429 too_many_requests   (service.people.limits)
    ├── ModelRefreshError            422 invalid_model       (service.refresh)
    │   ├── InvalidModelError        422 invalid_model
    │   ├── RefreshInProgressError   409 refresh_in_progress
    │   └── AlreadyActiveError       409 already_active
    ├── AuthError                    401 / 403               (service.api.auth)
    └── RequestRefusedError                                  (service.api.gate)
        ├── BodyTooLargeError        413 request_too_large
        ├── BodyTimeoutError         408 request_timeout
        └── TooManyRequestsError     429 too_many_requests
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service refuses; ``status`` and ``code`` say how to answer it."""

    status: int = 422
    code: str = "invalid_request"
    headers: dict[str, str] = {}  # noqa: RUF012 (read-only class default)

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFoundError(ServiceError, LookupError):
    status, code = 404, "not_found"


class ConflictError(ServiceError):
    status, code = 409, "conflict"
