"""Cross-request micro-batching: the clips of concurrent requests embedded together, and the
model's threads never fighting each other or the request threads.

Every live model call is made here, by one worker thread per core, in one of two modes:

- **wide**, when a single clip is waiting and no other call is running: one call of the live
  engine with all its intra-op threads — the lowest latency for one request. A request that
  finds nothing queued, running or on its way makes that call itself, in its own thread;
- **narrow**, when several clips are waiting: each worker takes a share of the queue and runs it
  on its own single-threaded copy of the model, side by side. Independent single-threaded runs
  waste nothing on the intra-op threads' synchronisation, and a request thread that takes a
  core for a moment slows one run instead of stalling every thread of a shared one (measured in
  README "Speed").

Within a call, clips are grouped by engine and length (the nets' LSTM and temporal max see
every frame, so clips of unequal length are never padded into one call), ``max_batch`` at most.
A wide call blocks new calls until it ends; clips arriving meanwhile queue and go together.

A request announces itself before it decodes its upload (``incoming``): when a worker could go
wide but others are still decoding, it waits for them at most ``max_wait_s``. A request alone
never waits: nothing announced, nothing to wait for.

Each clip's result or error belongs to its own request: a call that fails is retried one clip
at a time, so one bad clip cannot fail the others. A future cancelled before its call starts is
skipped. Single-threaded copies give the same numbers as the engine (the same kernels; the test
suite checks 1e-5).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from models.engine import EmbeddingEngine, available_cores

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
        """Clips uint8 [T_i, 64, 44] → float32 [n, c, p], once each one's call has run.
        A lone clip, with nothing else queued, running or on its way, runs wide in this very
        thread (no hand-over to a worker and back)."""
        announced, self.submitted = not self.submitted, True
        if len(clips) == 1 and self._batcher._claim_wide(announced):
            return self._batcher._run_inline(engine, clips[0])
        futures = self._batcher._submit(engine, clips, announced)
        return np.stack([future.result() for future in futures])


BatchObserver = Callable[[int, float, bool], None]
"""Called with (clips, seconds, wide) after every model call, e.g. to feed metrics."""


class EmbedBatcher:
    """The threads that embed live requests' clips. workers: model calls that may run side by
    side (default: one per usable core; 1 makes every call wide)."""

    def __init__(
        self,
        max_batch: int = 8,
        max_wait_s: float = 0.002,
        observe: BatchObserver | None = None,
        workers: int | None = None,
    ):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be ≥ 1 and max_wait_s ≥ 0")
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.workers = workers or available_cores()
        self.observe = observe or (lambda clips, seconds, wide: None)
        self._queue: list[_Job] = []
        self._announced = 0  # requests decoding an upload, clips not submitted yet
        self._wide = False  # a wide call is running: it has every core
        self._narrow = 0  # narrow calls running
        self._closed = False
        self._ready = threading.Condition()
        self._copies: weakref.WeakKeyDictionary[EmbeddingEngine, list[EmbeddingEngine]] = (
            weakref.WeakKeyDictionary()
        )
        self._threads = [
            threading.Thread(target=self._work, args=(n,), name=f"embed-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

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
            return not (self._queue or self._wide or self._narrow or self._announced)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    def _claim_wide(self, announced: bool) -> bool:
        """Whether the caller may run wide now, in its own thread (then it holds every core)."""
        with self._ready:
            if announced:
                self._announced -= 1
            alone = not (self._queue or self._wide or self._narrow or self._announced)
            if alone:
                self._wide = True
            elif announced:
                self._announced += 1  # submitted below, which counts it out again
            return alone

    def _run_inline(self, engine: EmbeddingEngine, clip: np.ndarray) -> np.ndarray:
        """(After ``_claim_wide``.) One clip → float32 [1, c, p], run by the caller."""
        try:
            started = time.perf_counter()
            vectors = engine.embed(clip[None])
            self.observe(1, time.perf_counter() - started, True)
            return vectors
        finally:
            with self._ready:
                self._wide = False
                if self._queue:  # clips that arrived meanwhile: wake the workers for them
                    self._ready.notify_all()

    def _submit(self, engine, clips, announced: bool) -> list[Future]:
        futures = [Future() for _ in clips]
        with self._ready:
            if self._closed:
                raise RuntimeError("the embedding workers have stopped")
            self._queue.extend(_Job(engine, c, f) for c, f in zip(clips, futures, strict=True))
            if announced:
                self._announced -= 1
            self._ready.notify_all()
        return futures

    def _take(self) -> tuple[list[_Job], bool] | None:
        """(jobs, wide) to run next, after the bounded wait; ``None`` once closed."""
        with self._ready:
            deadline = None
            while True:
                if self._closed and not self._queue:
                    return None
                if not self._queue or self._wide:
                    self._ready.wait()
                    continue
                if not self._narrow and self._announced and len(self._queue) < self.max_batch:
                    deadline = deadline or time.monotonic() + self.max_wait_s
                    left = deadline - time.monotonic()
                    if left > 0:  # could go wide: wait a moment for requests still decoding
                        self._ready.wait(left)
                        continue
                break
            if not self._narrow and (len(self._queue) == 1 or self.workers == 1):
                jobs, self._queue, self._wide = self._queue, [], True
                return jobs, True
            free = self.workers - self._narrow
            share = min(self.max_batch, math.ceil(len(self._queue) / free))
            jobs, self._queue = self._queue[:share], self._queue[share:]
            self._narrow += 1
            if self._queue:
                self._ready.notify_all()  # another worker can take the rest
            return jobs, False

    def _work(self, worker: int) -> None:
        while (taken := self._take()) is not None:
            jobs, wide = taken
            try:
                groups: dict[tuple[int, int], list[_Job]] = defaultdict(list)
                for job in jobs:
                    if job.future.set_running_or_notify_cancel():
                        groups[id(job.engine), len(job.clip)].append(job)
                for group in groups.values():
                    engine = group[0].engine if wide else self._copy(group[0].engine, worker)
                    for first in range(0, len(group), self.max_batch):
                        self._run(engine, group[first : first + self.max_batch], wide)
            except Exception as error:  # a worker must outlive any failure: answer, go on
                log.exception("embedding worker failed")
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
            finally:
                with self._ready:
                    if wide:
                        self._wide = False
                    else:
                        self._narrow -= 1
                    if self._queue:  # waking idle workers for nothing costs two switches
                        self._ready.notify_all()

    def _copy(self, engine: EmbeddingEngine, worker: int) -> EmbeddingEngine:
        """Worker ``worker``'s single-threaded copy of ``engine`` (the engine itself on a GPU,
        or when it is single-threaded already)."""
        if engine.device != "cpu" or engine.threads == 1:
            return engine
        copies = self._copies.get(engine)
        if copies is None:
            with self._ready:
                copies = self._copies.setdefault(engine, [None] * self.workers)
        if copies[worker] is None:
            try:
                copy = EmbeddingEngine(engine.path, "cpu", threads=1, spin=False)
            except (OSError, ValueError):  # the file is gone: share the engine itself
                log.warning("no single-threaded copy of %s", engine.version, exc_info=True)
                copy = engine
            copies[worker] = copy if copy.version == engine.version else engine
        return copies[worker]

    def _run(self, engine: EmbeddingEngine, jobs: list[_Job], wide: bool) -> None:
        started = time.perf_counter()
        try:
            vectors = engine.embed(np.stack([job.clip for job in jobs]))
        except Exception as error:
            if len(jobs) > 1:  # find whose clip it was: each gets its own answer
                for job in jobs:
                    self._run(engine, [job], wide)
            else:
                jobs[0].future.set_exception(error)
            return
        self.observe(len(jobs), time.perf_counter() - started, wide)
        for job, vector in zip(jobs, vectors, strict=True):
            job.future.set_result(vector)
