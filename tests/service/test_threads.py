"""service.threads: background work at the lowest priority, the request threadpool's size."""

from __future__ import annotations

import os
import threading

import anyio
import anyio.to_thread
import pytest

from service.threads import LOWEST_PRIORITY, apply_thread_budget, lower_this_thread


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread niceness is Linux's")
def test_lowering_a_thread_leaves_the_rest_of_the_process_alone():
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = {}

    def state() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def background() -> None:
        lower_this_thread()
        seen["background"] = state()

        def child() -> None:  # started after the lowering: inherits it (ONNX Runtime's pool)
            seen["child"] = state()

        started = threading.Thread(target=child)
        started.start()
        started.join()

    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    assert seen == {"background": LOWEST_PRIORITY, "child": LOWEST_PRIORITY}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_the_request_threadpool_gets_its_budget():
    async def main() -> float:
        apply_thread_budget(5)
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    assert anyio.run(main) == 5
