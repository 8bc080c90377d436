"""A periodic self-test: the active model proves itself through the live path on a timer, never
per call.

Each run embeds the card's reference clips through the request path's batcher (its worker must
answer) and compares them with the fp32 model's embeddings stored in the card
(``models.proof``): a model that no longer reproduces them, or a worker that hangs, fails the
test. A model whose card carries no reference (exported before proofs) embeds a standing figure
instead and is only checked for finite output. ``/readyz`` reports whether the last run passed;
``/model`` (client key) reports when it ran, how long it took, the agreement and what failed.
Four short clips a minute cost nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from models.proof import prove
from service.recognition import Recognizer

log = logging.getLogger("gaitlab.self_test")

TIMEOUT_S = 30.0


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
    agreement: float | None = None  # the worst reference clip's (None: no reference in the card)
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
        engine, batcher = self.recognizer.active.engine, self.recognizer.batcher
        try:
            proof = prove(engine, embed=lambda clips: batcher.embed(engine, clips, TIMEOUT_S))
            if proof.passed is None:  # no reference: the live path must at least answer
                embedding = batcher.embed(engine, list(_probe_clip()), timeout=TIMEOUT_S)
                if not np.isfinite(embedding).all():
                    raise ValueError("the embedding holds NaN or infinity")
            elif not proof.passed:
                raise ValueError(proof.detail)
            ms = round(1000 * (time.perf_counter() - started), 2)
            self.last = SelfTestResult(True, time.time(), embed_ms=ms, agreement=proof.agreement)
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
