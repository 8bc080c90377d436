"""The process's thread budget, set once at start (README "Speed").

On a small machine the service's pools fight unless told otherwise: ONNX Runtime's intra-op
threads (which busy-wait between runs by default), FAISS's OpenMP threads (one per core, for
every query, however small the gallery), and the request threadpool. The budget:

- the model (``service.batching``): a lone request's call runs on the live engine with
  ``threads`` intra-op threads (default: the usable cores), busy-waiting between its operators
  while ``spin`` (the default: faster calls); under load, ``model_workers`` calls (default: one
  per core) run side by side on single-threaded copies; never more calls than cores;
- search: ``search_threads`` OpenMP threads (default 1: one query against even 100,000 samples
  is memory-bound, and waking an OpenMP team costs more than it brings). OpenMP's thread count
  is a per-thread setting, and every request thread that searches would otherwise get a team
  of its own (whose threads busy-wait after each search), so the index sets it in the thread
  that searches, each time (``service.gallery.index``);
- requests: ``request_threads`` threadpool threads for decoding, normalisation and search;
- background work (a model refresh, retraining the search index): one thread each, at the
  lowest CPU priority (niceness 19), so live requests get the cores first.

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
    """Give the calling thread (and threads it starts later) the lowest CPU priority,
    niceness 19 (Linux: per thread). Not ``SCHED_IDLE``: that starves it for as long as live
    load keeps every core busy, and a refresh under steady traffic never ended. Elsewhere this
    does nothing."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)
