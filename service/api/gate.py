"""The request gate: what every HTTP request passes before the app reads a byte of its body.

In order, from the route's own declarations (``dependencies=[CLIENT | ADMIN]``, ``EMBEDS``,
``BODY_ONE_CLIP | BODY_LARGE``):

1. **Authentication** (401/403), from the headers alone;
2. **the body's size** as declared (413), when ``Content-Length`` is sent;
3. **the body as it streams**, whatever its framing (chunked or not): more bytes than the
   route's limit → 413; a pause longer than ``body_idle_timeout_s``, an average rate under
   ``body_min_rate`` once ``body_grace_s`` has passed, or a body still arriving after
   ``body_timeout_s`` → 408;
4. **a concurrency slot** (429 with ``Retry-After``) for routes that run the model, taken when
   the body's last byte has arrived — a slow upload holds no slot — and kept until the answer.

When the gate refuses mid-read, the app's answer (whatever its parser made of the cut body) is
replaced by the gate's. Refusals use the one error body (``service.api.errors``) and close the
connection. Pure ASGI: no buffering, no copies.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from fastapi import Depends
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.auth import PASSED, authenticate
from service.api.errors import BODY_CUT, send_error
from service.errors import ServiceError
from service.settings import Settings

SMALL_BODY = 64 * 1024  # routes that take no upload: a form or nothing
MULTIPART_SLACK = 64 * 1024  # boundaries and form fields around one clip


class RequestRefusedError(ServiceError):
    pass


class BodyTooLargeError(RequestRefusedError):
    status, code = 413, "request_too_large"


class BodyTimeoutError(RequestRefusedError):
    status, code = 408, "request_timeout"


class TooManyRequestsError(RequestRefusedError):
    status, code = 429, "too_many_requests"
    headers = {"Retry-After": "1"}  # noqa: RUF012


def _marker(name: str):
    async def declared() -> None:  # async: a plain def would run in the threadpool
        """A declaration read by the request gate; nothing to do per request."""

    declared.gate = name
    return Depends(declared)


EMBEDS = _marker("embeds")  # runs the model: takes a concurrency slot
BODY_ONE_CLIP = _marker("one_clip")  # body: one clip upload (max_upload_bytes + form fields)
BODY_LARGE = _marker("large")  # body: many clips or a model file (max_request_bytes)


@dataclass(frozen=True)
class Policy:
    role: str | None  # None: open to all
    embeds: bool
    max_body: int


def route_policy(route, settings: Settings) -> Policy:
    """What a route declared, read from its dependencies (router-level ones included)."""
    declared = [d.dependency for d in getattr(route, "dependencies", [])]
    roles = {getattr(f, "role", None) for f in declared} - {None}
    marks = {getattr(f, "gate", None) for f in declared} - {None}
    role = "admin" if "admin" in roles else "client" if "client" in roles else None
    if "large" in marks:
        max_body = settings.max_request_bytes
    elif "one_clip" in marks:
        max_body = min(settings.max_upload_bytes + MULTIPART_SLACK, settings.max_request_bytes)
    else:
        max_body = SMALL_BODY
    return Policy(role, "embeds" in marks, max_body)


OPEN = Policy(None, False, SMALL_BODY)  # unknown routes and wrong methods: 404/405 follow


class Slots:
    """The embedding slots of one process (only touched on the event loop: no lock needed)."""

    def __init__(self, count: int):
        self.count, self.in_use = count, 0

    def take(self) -> None:
        if self.in_use >= self.count:
            raise TooManyRequestsError(f"{self.count} requests are being processed; retry shortly")
        self.in_use += 1

    def give_back(self) -> None:
        self.in_use -= 1


class BodyGuard:
    """``receive`` with the body's byte budget and deadlines; takes the request's slot (if it
    needs one) when the body is complete; remembers why it cut a body."""

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        limit: int,
        settings: Settings,
        slots: Slots | None,
    ):
        self.scope, self.receive, self.limit, self.settings = scope, receive, limit, settings
        self.slots = slots  # None: the route runs no model
        self.holds_slot = False
        self.received = 0
        self.started = time.monotonic()
        self.complete = False
        self.failure: RequestRefusedError | None = None

    def _fail(self, error: RequestRefusedError) -> RequestRefusedError:
        self.failure = error
        self.scope[BODY_CUT] = True  # the app's answer to the cut body is not counted
        return error

    async def __call__(self) -> Message:
        if self.failure:
            raise self.failure
        if self.complete:  # after the body only a disconnect can come: no deadline
            return await self.receive()
        settings = self.settings
        elapsed = time.monotonic() - self.started
        wait = min(settings.body_idle_timeout_s, max(0.0, settings.body_timeout_s - elapsed))
        try:
            message = await asyncio.wait_for(self.receive(), wait)
        except asyncio.TimeoutError:
            detail = (
                f"the body took longer than {settings.body_timeout_s:g} s"
                if wait < settings.body_idle_timeout_s
                else f"no body bytes for {settings.body_idle_timeout_s:g} s"
            )
            raise self._fail(BodyTimeoutError(detail)) from None
        if message["type"] != "http.request":
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.limit:
            raise self._fail(BodyTooLargeError(f"the request body exceeds {self.limit} bytes"))
        self.complete = not message.get("more_body", False)
        elapsed = time.monotonic() - self.started
        too_slow = self.received < settings.body_min_rate * elapsed
        if not self.complete and elapsed > settings.body_grace_s and too_slow:
            detail = f"the body arrives slower than {settings.body_min_rate} bytes/s"
            raise self._fail(BodyTimeoutError(detail))
        if self.complete and self.slots is not None:
            try:
                self.slots.take()
            except TooManyRequestsError as error:
                raise self._fail(error) from None
            self.holds_slot = True
        return message


class RequestGate:
    """``routes``: the app's API routes (whose declarations make the policies); ``count(code)``
    is called for every refusal (the metrics)."""

    def __init__(self, app: ASGIApp, settings: Settings, routes: list, count=lambda code: None):
        self.app, self.settings, self.count = app, settings, count
        self.slots = Slots(settings.max_concurrency)
        self.routes = [(route, route_policy(route, settings)) for route in routes]

    def policy(self, scope: Scope) -> Policy:
        for route, policy in self.routes:
            if route.matches(scope)[0] == Match.FULL:
                return policy
        return OPEN

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy(scope)
        headers = dict(scope["headers"])
        try:
            if policy.role:
                scope[PASSED] = authenticate(headers, policy.role, self.settings)
            declared = headers.get(b"content-length", b"")
            if declared.isdigit() and int(declared) > policy.max_body:
                raise BodyTooLargeError(f"the request body exceeds {policy.max_body} bytes")
        except ServiceError as error:
            self.count(error.code)
            await send_error(send, error)
            return
        slots = self.slots if policy.embeds else None
        guard = BodyGuard(scope, receive, policy.max_body, self.settings, slots)
        try:
            await self._guarded(scope, guard, send)
        finally:
            if guard.holds_slot:
                self.slots.give_back()

    async def _guarded(self, scope: Scope, guard: BodyGuard, send: Send) -> None:
        started = False

        async def send_or_replace(message: Message) -> None:
            nonlocal started
            if guard.failure is None:
                started = True
                await send(message)
            elif not started and message["type"] == "http.response.start":
                started = True
                self.count(guard.failure.code)
                await send_error(send, guard.failure)
            # the app's own answer to a body the gate cut is dropped

        try:
            await self.app(scope, guard, send_or_replace)
        except Exception:
            if guard.failure is None:
                raise
            if not started:
                self.count(guard.failure.code)
                await send_error(send, guard.failure)
