"""Prometheus metrics of one app (its own registry, so several apps can live in one process).

It measures without knowing what it measures: counters are fed by whoever observes, and the
gauges read at each scrape come from a function the app registers where it is built
(``Metrics.read_with``), so this module imports nothing of the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class Readings:
    """The gauges' values at one scrape."""

    gallery_samples: int
    gallery_subjects: int
    model_version: str
    provider: str
    refresh_running: bool
    refresh_done: int
    refresh_total: int
    change_position: int
    replica_lag_s: float


class Metrics:
    def __init__(self) -> None:
        self._read: Callable[[], Readings] | None = None
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gaitlab_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gaitlab_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.steps = Histogram(
            "gaitlab_step_duration_seconds",
            "time in one step: embed (a request's wait for its embedding), model (one model "
            "call, several requests' clips), search (index)",
            ["step"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_clips = Histogram(
            "gaitlab_embed_batch_clips",
            "clips embedded in one model call (concurrent requests batched together)",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
            registry=self.registry,
        )
        self.model_calls = Counter(
            "gaitlab_model_calls",
            "model calls: wide (one clip, every core) or narrow (a share, one core)",
            ["mode"],
            registry=self.registry,
        )
        self.errors = Counter(
            "gaitlab_errors",
            "requests refused or failed, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.gallery_samples = Gauge(
            "gaitlab_gallery_samples", "samples in the search index", registry=self.registry
        )
        self.gallery_subjects = Gauge(
            "gaitlab_gallery_subjects", "subjects in the search index", registry=self.registry
        )
        self.model = Gauge(
            "gaitlab_model_info",
            "the active model (value 1)",
            ["version", "provider"],
            registry=self.registry,
        )
        self.refresh_running = Gauge(
            "gaitlab_refresh_running", "1 while a model refresh runs", registry=self.registry
        )
        self.refresh_progress = Gauge(
            "gaitlab_refresh_samples_done",
            "samples re-embedded by the refresh",
            registry=self.registry,
        )
        self.refresh_total = Gauge(
            "gaitlab_refresh_samples_total", "samples the refresh re-embeds", registry=self.registry
        )
        self.change_position = Gauge(
            "gaitlab_change_position",
            "the last change of the store's change log applied to this replica's index",
            registry=self.registry,
        )
        self.replica_lag = Gauge(
            "gaitlab_replica_lag_seconds",
            "from the commit of the last change applied here to its application",
            registry=self.registry,
        )

    def observe_batch(self, clips: int, seconds: float, wide: bool) -> None:
        self.batch_clips.observe(clips)
        self.steps.labels("model").observe(seconds)
        self.model_calls.labels("wide" if wide else "narrow").inc()

    def observe_step(self, step: str, seconds: float) -> None:
        self.steps.labels(step).observe(seconds)

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def read_with(self, read: Callable[[], Readings]) -> None:
        """Where the gauges come from at each scrape (the app registers it once built)."""
        self._read = read

    def render(self) -> bytes:
        """The Prometheus text exposition, with the gauges read now."""
        if self._read is not None:
            now = self._read()
            self.change_position.set(now.change_position)
            self.replica_lag.set(now.replica_lag_s)
            self.gallery_samples.set(now.gallery_samples)
            self.gallery_subjects.set(now.gallery_subjects)
            self.model.clear()
            self.model.labels(now.model_version, now.provider).set(1)
            self.refresh_running.set(1 if now.refresh_running else 0)
            self.refresh_progress.set(now.refresh_done)
            self.refresh_total.set(now.refresh_total)
        return generate_latest(self.registry)
