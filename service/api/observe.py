"""Per-request metrics and one structured access-log line per request."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request

from service.metrics import Metrics

log = logging.getLogger("gaitlab.access")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def install_observation(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        except Exception:
            metrics.error("internal")
            raise
        finally:
            seconds = time.perf_counter() - started
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            # labels from closed sets only: a made-up method or path adds no series
            method = request.method if request.method in METHODS else "OTHER"
            metrics.requests.labels(method, template, str(status)).inc()
            metrics.latency.labels(method, template).observe(seconds)
            log.info(
                "request",
                extra={
                    "method": request.method[:16],
                    "path": request.url.path[:256],
                    "route": template,
                    "status": status,
                    "ms": round(1000 * seconds, 2),
                    "client": request.client.host if request.client else None,
                },
            )
