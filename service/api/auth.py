"""API keys: two roles, sent as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``.

- ``client``: identify, verify, reading the gallery, the model and metrics;
- ``admin``: all of that, plus gallery writes and model refresh.

A route declares the role it needs with ``dependencies=[CLIENT]`` or ``[ADMIN]``; the request
gate (``service.api.gate``) reads that declaration and checks the key before the request takes
a slot or a byte of its body is read. The dependency itself then only confirms that the gate
passed the request (it refuses otherwise) and puts the scheme in the OpenAPI document.

Keys are compared in constant time, against every configured key (no early exit), so timing
says nothing about how much of a key was right. With no keys configured, authentication is off:
the service then only listens on loopback (``Settings.check_bind``).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from service.errors import ServiceError
from service.settings import Settings

Role = Literal["client", "admin"]
PASSED = "gaitlab.role"  # set in the ASGI scope by the gate once a request's key is checked
API_KEY = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="or Authorization: Bearer KEY"
)


class AuthError(ServiceError):
    """Missing or wrong key (401), or a key whose role may not do this (403)."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code = status, code
        self.headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key of a request, from its raw ASGI headers."""
    key = headers.get(b"x-api-key") or None  # an empty header does not hide a Bearer key
    if key is None:
        scheme, _, credentials = headers.get(b"authorization", b"").partition(b" ")
        key = credentials.strip() if scheme.lower() == b"bearer" else None
    return key.decode("latin-1") if key else None


def _matches(key: str, candidates: tuple[str, ...]) -> bool:
    given = key.encode("latin-1", "replace")
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(given, candidate.encode())
    return found


def role_of(key: str, settings: Settings) -> Role | None:
    is_admin = _matches(key, settings.admin_keys)
    is_client = _matches(key, settings.client_keys)
    return "admin" if is_admin else "client" if is_client else None


def authenticate(headers: dict[bytes, bytes], role: Role, settings: Settings) -> Role:
    """The role the request may act with; ``AuthError`` unless its key is of ``role`` (or
    admin). With authentication off, every request has the role it asks for."""
    if not settings.auth_enabled:
        return role
    key = presented_key(headers)
    if key is None:
        raise AuthError(401, "missing_api_key", "send an API key in the X-API-Key header")
    held = role_of(key, settings)
    if held is None:
        raise AuthError(401, "invalid_api_key", "the API key is not valid")
    if role == "admin" and held != "admin":
        raise AuthError(403, "forbidden", "this needs an admin key")
    return held


def require(role: Role):
    """The declaration a route carries: it needs a key of ``role``."""

    async def passed_the_gate(  # async: a plain def would run in the threadpool
        request: Request, _key: Annotated[str | None, Security(API_KEY)] = None
    ) -> None:
        if request.scope.get(PASSED) not in ((role, "admin") if role == "client" else (role,)):
            raise AuthError(401, "missing_api_key", "the request was not authenticated")

    passed_the_gate.role = role  # read by the gate
    return Depends(passed_the_gate)


CLIENT = require("client")
ADMIN = require("admin")
