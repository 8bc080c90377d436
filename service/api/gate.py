"""The request gate: what every HTTP request passes before the app reads a byte of its body.

In order, from the policy the route declares on its endpoint (``service.api.policy``):

1. **Authentication** (401/403), from the headers alone (read once, as Starlette's
   ``Headers``; a key or a ``Content-Length`` sent twice is a 400);
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

from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.auth import authenticate
from service.api.errors import BODY_CUT, send_error
from service.api.policy import OPEN, Policy, policy_of
from service.errors import ServiceError
from service.settings import Settings


class RequestRefusedError(ServiceError):
    pass


class BodyTooLargeError(RequestRefusedError):
    status, code = 413, "request_too_large"


class BodyTimeoutError(RequestRefusedError):
    status, code = 408, "request_timeout"


class RepeatedHeaderError(RequestRefusedError):
    status, code = 400, "repeated_header"


class TooManyRequestsError(RequestRefusedError):
    status, code = 429, "too_many_requests"
    headers = {"Retry-After": "1"}  # noqa: RUF012


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
        self.routes = [(route, policy_of(route)) for route in routes]

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
        headers = Headers(scope=scope)
        settings = self.settings
        max_body = policy.max_body(settings.max_upload_bytes, settings.max_request_bytes)
        try:
            if policy.role:
                authenticate(headers, policy.role, settings)
            if len(lengths := headers.getlist("content-length")) > 1:
                raise RepeatedHeaderError("the content-length header is sent more than once")
            if lengths and lengths[0].isdigit() and int(lengths[0]) > max_body:
                raise BodyTooLargeError(f"the request body exceeds {max_body} bytes")
        except ServiceError as error:
            self.count(error.code)
            await send_error(send, error)
            return
        slots = self.slots if policy.embeds else None
        guard = BodyGuard(scope, receive, max_body, settings, slots)
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
