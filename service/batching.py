"""Cross-request micro-batching: the clips of concurrent requests embedded in one engine call.

One worker thread makes every live engine call, so requests never run the model against each
other (on two cores, two ORT runs side by side each take twice as long and thrash the caches).
While it runs one batch, newly submitted clips queue; its next call takes all of them, grouped
by engine and clip length (the nets' LSTM and temporal max see every frame, so clips of unequal
length are never padded into one call), at most ``max_batch`` a call.

A request announces itself before it decodes its upload (``incoming``); when the worker finds
a clip queued and others still decoding, it waits for them at most ``max_wait_s``. A request
alone never waits: nothing announced, nothing to wait for.

Each clip's result or error belongs to its own request: a batch that fails is retried one clip
at a time, so one bad clip cannot fail the others. A future cancelled before its batch starts
is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from models.engine import EmbeddingEngine

log = logging.getLogger(__name__)


@dataclass
class _Job:
    engine: EmbeddingEngine
    clip: np.ndarray  # uint8 [T, 64, 44]
    future: Future


class Ticket:
    """A request's place in line, from the start of its decoding to its clips' submission."""

    def __init__(self, batcher: EmbedBatcher):
        self._batcher = batcher
        self.submitted = False

    def embed(self, engine: EmbeddingEngine, clips: list[np.ndarray]) -> np.ndarray:
        """Clips uint8 [T_i, 64, 44] → float32 [n, c, p], once each one's batch has run."""
        futures = self._batcher._submit(engine, clips, announced=not self.submitted)
        self.submitted = True
        return np.stack([future.result() for future in futures])


BatchObserver = Callable[[int, float], None]
"""Called with (clips, seconds) after every engine call, e.g. to feed metrics."""


class EmbedBatcher:
    """The one thread that embeds live requests' clips, several requests' clips per call."""

    def __init__(
        self,
        max_batch: int = 8,
        max_wait_s: float = 0.002,
        observe: BatchObserver | None = None,
    ):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be ≥ 1 and max_wait_s ≥ 0")
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.observe = observe or (lambda clips, seconds: None)
        self._queue: list[_Job] = []
        self._announced = 0  # requests decoding an upload, clips not submitted yet
        self._busy = False
        self._closed = False
        self._ready = threading.Condition()
        self._worker = threading.Thread(target=self._work, name="embed-batcher", daemon=True)
        self._worker.start()

    @contextmanager
    def incoming(self) -> Iterator[Ticket]:
        """Around one request's decoding and embedding: ``with batcher.incoming() as ticket:
        clip = decode(...); vectors = ticket.embed(engine, [clip])``."""
        ticket = Ticket(self)
        with self._ready:
            self._announced += 1
        try:
            yield ticket
        finally:
            if not ticket.submitted:  # failed before its clips were submitted
                with self._ready:
                    self._announced -= 1
                    self._ready.notify_all()

    def embed(
        self, engine: EmbeddingEngine, clips: list[np.ndarray], timeout: float | None = None
    ) -> np.ndarray:
        """Clips uint8 [T_i, 64, 44] → float32 [n, c, p], without announcing them first;
        ``TimeoutError`` after ``timeout`` seconds."""
        futures = self._submit(engine, clips, announced=False)
        return np.stack([future.result(timeout) for future in futures])

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing running, nobody decoding: background work may go ahead."""
        with self._ready:
            return not (self._queue or self._busy or self._announced)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._worker.join()

    def _submit(self, engine, clips, announced: bool) -> list[Future]:
        futures = [Future() for _ in clips]
        with self._ready:
            if self._closed:
                raise RuntimeError("the embedding worker has stopped")
            self._queue.extend(_Job(engine, c, f) for c, f in zip(clips, futures, strict=True))
            if announced:
                self._announced -= 1
            self._ready.notify_all()
        return futures

    def _take(self) -> list[_Job] | None:
        """The next jobs to run (all queued, after the bounded wait); ``None`` once closed."""
        with self._ready:
            while not self._queue:
                if self._closed:
                    return None
                self._ready.wait()
            deadline = time.monotonic() + self.max_wait_s
            while self._announced and len(self._queue) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            jobs, self._queue = self._queue, []
            self._busy = True
            return jobs

    def _work(self) -> None:
        while (jobs := self._take()) is not None:
            try:
                groups: dict[tuple[int, int], list[_Job]] = defaultdict(list)
                for job in jobs:
                    if job.future.set_running_or_notify_cancel():
                        groups[id(job.engine), len(job.clip)].append(job)
                for group in groups.values():
                    for first in range(0, len(group), self.max_batch):
                        self._run(group[first : first + self.max_batch])
            finally:
                with self._ready:
                    self._busy = False

    def _run(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            vectors = jobs[0].engine.embed(np.stack([job.clip for job in jobs]))
        except Exception as error:
            if len(jobs) > 1:  # find whose clip it was: each gets its own answer
                for job in jobs:
                    self._run([job])
            else:
                jobs[0].future.set_exception(error)
            return
        self.observe(len(jobs), time.perf_counter() - started)
        for job, vector in zip(jobs, vectors, strict=True):
            job.future.set_result(vector)
