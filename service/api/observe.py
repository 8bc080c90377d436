"""Per-request metrics and one structured access-log line per request.

A plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which runs every request
through an extra task and a memory stream): it times the request, reads the status from the
response's start, and labels by the route template once the router has matched it.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics

log = logging.getLogger("gaitlab.access")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Observation:
    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self._record(scope, status, time.perf_counter() - started)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # before the last byte leaves: a client that has its answer finds it counted
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:
            status = 500
            self.metrics.error("internal")
            raise
        finally:
            record()  # a request that failed or never finished its body

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        template = getattr(scope.get("route"), "path", "unmatched")
        # labels from closed sets only: a made-up method or path adds no series
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        self.metrics.requests.labels(method, template, str(status)).inc()
        self.metrics.latency.labels(method, template).observe(seconds)
        client = scope.get("client")
        log.info(
            "request",
            extra={
                "method": scope["method"][:16],
                "path": scope["path"][:256],
                "route": template,
                "status": status,
                "ms": round(1000 * seconds, 2),
                "client": client[0] if client else None,
            },
        )


def install_observation(app: FastAPI, metrics: Metrics) -> None:
    """Outermost middleware: sees every request, refused ones included."""
    app.add_middleware(Observation, metrics=metrics)
