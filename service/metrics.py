"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from service.recognition import Recognizer
from service.refresh import ModelRefresher
from service.replication import ChangeFollower

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
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

    def render(
        self, recognizer: Recognizer, refresher: ModelRefresher, follower: ChangeFollower
    ) -> bytes:
        """The Prometheus text exposition, with the gauges read now."""
        self.change_position.set(follower.position)
        self.replica_lag.set(follower.lag_now() or 0.0)
        active = recognizer.active
        self.gallery_samples.set(len(active.index))
        self.gallery_subjects.set(active.index.subjects)
        self.model.clear()
        self.model.labels(active.version, active.engine.provider).set(1)
        status = refresher.status
        self.refresh_running.set(1 if status.state == "running" else 0)
        self.refresh_progress.set(status.done)
        self.refresh_total.set(status.total)
        return generate_latest(self.registry)
