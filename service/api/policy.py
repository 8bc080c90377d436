"""What each route needs, declared once on its endpoint: the role of the key it takes, whether
it runs the model (a concurrency slot), and how large its body may be.

    @router.post("/identify", **declare("client", embeds=True, body="one_clip"))

The request gate (``service.api.gate``) enforces it before the app reads a byte of the body;
the OpenAPI document shows it (the route's ``security`` and ``x-gaitlab-policy``). Nothing of
it runs inside FastAPI per request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Role = Literal["client", "admin"]
Body = Literal["small", "one_clip", "large"]

POLICY_KEY = "x-gaitlab-policy"
SECURITY_SCHEMES = {
    "APIKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "the same key"},
}
SMALL_BODY = 64 * 1024  # routes that take no upload: a form or nothing
MULTIPART_SLACK = 64 * 1024  # boundaries and form fields around one clip


@dataclass(frozen=True)
class Policy:
    """role: the key a request needs (None: open to all; an admin key does all a client may);
    embeds: the route runs the model (takes a concurrency slot once its body has arrived);
    body: what its body may hold: ``small`` (a form or nothing), ``one_clip`` (one upload),
    ``large`` (many clips, or a model file)."""

    role: Role | None = None
    embeds: bool = False
    body: Body = "small"

    def max_body(self, max_upload_bytes: int, max_request_bytes: int) -> int:
        """The most bytes a request's body may hold under these settings."""
        if self.body == "large":
            return max_request_bytes
        if self.body == "one_clip":
            return min(max_upload_bytes + MULTIPART_SLACK, max_request_bytes)
        return SMALL_BODY


OPEN = Policy()  # unknown routes and wrong methods: 404/405 follow


def declare(
    role: Role | None = None, embeds: bool = False, body: Body = "small", **openapi: object
) -> dict:
    """The route decorator's keyword arguments that declare its policy (``openapi``: more of
    the route's own OpenAPI, e.g. its request body)."""
    extra: dict = {**openapi, POLICY_KEY: asdict(Policy(role, embeds, body))}
    if role is not None:
        extra["security"] = [{name: []} for name in SECURITY_SCHEMES]
    return {"openapi_extra": extra}


def policy_of(route: object) -> Policy:
    """A route's declared policy (:data:`OPEN` for one that declares none)."""
    declared = (getattr(route, "openapi_extra", None) or {}).get(POLICY_KEY)
    return Policy(**declared) if declared else OPEN
