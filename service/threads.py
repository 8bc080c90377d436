"""The process's thread budget, set once at start (README "Speed").

On a small machine the service's pools fight unless told otherwise: ONNX Runtime's intra-op
threads (which busy-wait between runs by default), FAISS's OpenMP threads (one per core, for
every query, however small the gallery), and the request threadpool. The budget:

- the model: ``threads`` intra-op threads (default: the usable cores), no busy-waiting unless
  ``spin``; one worker thread makes every live model call (``service.batching``), so two runs
  never split the cores between them;
- search: ``search_threads`` OpenMP threads (default 1: one query against even 100,000 samples
  is memory-bound, and waking an OpenMP team costs more than it brings). OpenMP's thread count
  is a per-thread setting, and every request thread that searches would otherwise get a team
  of its own (whose threads busy-wait after each search), so the index sets it in the thread
  that searches, each time (``service.gallery.index``);
- requests: ``request_threads`` threadpool threads for decoding, normalisation and search;
- background work (model refresh): one thread, at the lowest CPU priority (``service.refresh``).

torch is never loaded (the service imports no training code).
"""

from __future__ import annotations

import contextlib
import os
import threading

import anyio.to_thread

LOWEST_PRIORITY = 19


def apply_thread_budget(request_threads: int) -> None:
    """Size the request threadpool; call on the event loop (lifespan)."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = request_threads


def lower_this_thread() -> None:
    """Give the calling thread (and threads it starts later) the lowest CPU priority (Linux:
    niceness is per thread). Elsewhere this does nothing."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)
