"""API keys: two roles, sent as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``.

- ``client``: identify, verify, reading the gallery, the model and metrics;
- ``admin``: all of that, plus gallery writes and model refresh.

Keys are compared in constant time, against every configured key (no early exit), so timing
says nothing about how much of a key was right. With no keys configured, authentication is off:
the service then only listens on loopback (``Settings.check_bind``).
"""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import Depends, Request

from service.settings import Settings

Role = Literal["client", "admin"]


class AuthError(Exception):
    """Missing or wrong key (401), or a key whose role may not do this (403)."""

    def __init__(self, status: int, reason: str, detail: str):
        super().__init__(detail)
        self.status, self.reason = status, reason


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key is None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        key = credentials.strip() if scheme.lower() == "bearer" else None
    return key or None


def _matches(key: str, candidates: tuple[str, ...]) -> bool:
    given = key.encode()
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(given, candidate.encode())
    return found


def role_of(key: str, settings: Settings) -> Role | None:
    is_admin = _matches(key, settings.admin_keys)
    is_client = _matches(key, settings.client_keys)
    return "admin" if is_admin else "client" if is_client else None


def require(role: Role):
    """A dependency that lets the request through only with a key of ``role`` (or admin)."""

    def check(request: Request) -> None:
        settings: Settings = request.app.state.settings
        if not settings.auth_enabled:
            return
        key = presented_key(request)
        if key is None:
            raise AuthError(401, "missing_api_key", "send an API key in the X-API-Key header")
        held = role_of(key, settings)
        if held is None:
            raise AuthError(401, "invalid_api_key", "the API key is not valid")
        if role == "admin" and held != "admin":
            raise AuthError(403, "forbidden", "this needs an admin key")

    return Depends(check)


CLIENT = require("client")
ADMIN = require("admin")
