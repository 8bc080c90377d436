"""A periodic self-test: a real embedding through the active model on a timer, never per call.

``/readyz`` reports whether the last one passed; ``/model`` (client key) reports when it ran,
how long it took and what failed. One embedding of a small clip a minute costs nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from service.recognition import Recognizer

log = logging.getLogger("gaitlab.self_test")


def _probe_clip() -> np.ndarray:
    """A standing figure, 8 frames: uint8 [1, 8, 64, 44]."""
    clip = np.zeros((1, 8, 64, 44), np.uint8)
    clip[:, :, 8:56, 16:28] = 255
    return clip


@dataclass
class SelfTestResult:
    ok: bool
    at: float
    embed_ms: float | None = None
    error: str | None = None


class SelfTest:
    def __init__(self, recognizer: Recognizer, interval_s: float = 60.0):
        self.recognizer, self.interval_s = recognizer, interval_s
        self.last: SelfTestResult | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ok(self) -> bool:
        return self.last is not None and self.last.ok

    def public(self) -> dict | None:
        return None if self.last is None else self.last.__dict__.copy()

    def run_once(self) -> SelfTestResult:
        started = time.perf_counter()
        try:
            embedding = self.recognizer.batcher.embed(  # the live path: its worker must answer
                self.recognizer.active.engine, list(_probe_clip()), timeout=30
            )
            if not np.isfinite(embedding).all():
                raise ValueError("the embedding holds NaN or infinity")
            ms = round(1000 * (time.perf_counter() - started), 2)
            self.last = SelfTestResult(True, time.time(), embed_ms=ms)
        except Exception as error:  # a failed self-test is reported, never raised
            log.error("self-test failed", extra={"error": str(error)})
            self.last = SelfTestResult(False, time.time(), error=str(error))
        return self.last

    def start(self) -> None:
        self.run_once()
        self._thread = threading.Thread(target=self._loop, name="self-test", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
