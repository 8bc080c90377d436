"""API keys: two roles, sent as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``.

- ``client``: identify, verify, reading the gallery, the model and metrics;
- ``admin``: all of that, plus gallery writes and model refresh.

A route declares the role it needs once, on its endpoint (``service.api.policy``); the request
gate (``service.api.gate``) checks the key before the request takes a slot or a byte of its body
is read. Headers are read one way (Starlette's ``Headers``), and a key sent twice (two
``X-API-Key``, or two ``Authorization``) is refused: which one counts would be a guess.

Keys are compared in constant time, against every configured key (no early exit), so timing
says nothing about how much of a key was right. With no keys configured, authentication is off:
the service then only listens on loopback (``Settings.check_bind``).
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers

from service.api.policy import Role
from service.errors import ServiceError
from service.settings import Settings


class AuthError(ServiceError):
    """Missing or wrong key (401), or a key whose role may not do this (403)."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code = status, code
        self.headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}


def presented_key(headers: Headers) -> str | None:
    """The key of a request (``AuthError`` when it sends one twice)."""
    for name in ("x-api-key", "authorization"):
        if len(headers.getlist(name)) > 1:
            raise AuthError(400, "repeated_header", f"the {name} header is sent more than once")
    key = headers.get("x-api-key") or None  # an empty header does not hide a Bearer key
    if key is None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        key = credentials.strip() if scheme.lower() == "bearer" else None
    return key or None


def _matches(key: str, candidates: tuple[str, ...]) -> bool:
    given = key.encode("latin-1", "replace")  # as the header's bytes came
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(given, candidate.encode())
    return found


def role_of(key: str, settings: Settings) -> Role | None:
    is_admin = _matches(key, settings.admin_keys)
    is_client = _matches(key, settings.client_keys)
    return "admin" if is_admin else "client" if is_client else None


def authenticate(headers: Headers, role: Role, settings: Settings) -> Role:
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
