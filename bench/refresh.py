"""Model refresh: how long re-embedding a gallery of 1,000 and 10,000 samples takes, and what it
does to identify latency, against a real server (uvicorn), one run.

    python bench/refresh.py --from FILE.onnx --to OTHER.onnx [--data /tmp/casia-b]
                            [--subjects 063-074] [--sizes 1000,10000] [--frames 30]

For each size: a store of that many samples (real 063–074 sequences, ``--frames`` frames each,
repeated to reach the size) is embedded by ``--from`` while the server starts; then one client
identifies continuously for 15 s without a refresh, and again while ``POST /admin/model``
re-embeds the gallery with ``--to``. Prints the refresh time, samples/s, and identify p50/p99
without and during the refresh.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.engine import EmbeddingEngine  # noqa: E402
from service.gallery import open_store  # noqa: E402
from service.gallery.store import NewSample  # noqa: E402
from tests.service.live_server import Server  # noqa: E402
from training.data.cache import SilhouetteCache  # noqa: E402
from training.data.subjects import parse_subjects  # noqa: E402


def fill_store(path: Path, cache: SilhouetteCache, size: int, frames: int, version: str) -> None:
    """``size`` samples of ``frames`` frames cut from the cache's sequences, with placeholder
    embeddings of another version (so the server embeds them all with its model at start)."""
    store = open_store(path)
    usable = [i for i in range(len(cache)) if cache.lengths[i] >= frames]
    batch = []
    for n in range(size):
        index = usable[n % len(usable)]
        clip = cache.sequence(index)[:frames]
        batch.append(NewSample(cache.keys[index].subject, clip, np.zeros(1, np.float32)))
        if len(batch) == 500:
            store.add_samples(batch, version)
            batch = []
    if batch:
        store.add_samples(batch, version)
    store.close()


def identify_loop(url: str, upload: bytes, stop: threading.Event) -> list[float]:
    latencies = []
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop.is_set():
            started = time.perf_counter()
            files = {"clip": ("p.npy", upload, "application/octet-stream")}
            client.post("/identify", files=files, params={"threshold": -1.0}).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def measure(url: str, upload: bytes, during=None, seconds: float = 15.0) -> tuple[list, float]:
    """Identify latencies while ``during()`` runs (or for ``seconds``), and how long it ran."""
    stop = threading.Event()
    result: list[list[float]] = []
    worker = threading.Thread(target=lambda: result.append(identify_loop(url, upload, stop)))
    worker.start()
    started = time.perf_counter()
    if during is None:
        time.sleep(seconds)
    else:
        during()
    elapsed = time.perf_counter() - started
    stop.set()
    worker.join()
    return result[0], elapsed


def refresh(admin: httpx.Client, target: Path) -> None:
    """Activate ``target`` and wait until the refresh is over."""
    admin.post("/admin/model", data={"path": str(target)}).raise_for_status()
    while admin.get("/admin/model").json()["refresh"]["state"] == "running":
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, required=True)
    parser.add_argument("--to", dest="target", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("/tmp/casia-b"))
    parser.add_argument("--subjects", default="063-074")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()

    cache = SilhouetteCache.load(args.data, parse_subjects(args.subjects), progress=False)
    buffer = io.BytesIO()
    np.save(buffer, cache.sequence(0))
    upload = buffer.getvalue()
    source = EmbeddingEngine(args.source, warmup=False).version
    target = EmbeddingEngine(args.target, warmup=False).version
    print(f"refresh {args.source.name} ({source}) → {args.target.name} ({target})")
    print(
        "\n| samples | refresh s | samples/s | identify p50 / p99 ms, no refresh "
        "| during the refresh | requests during |\n|---:|---:|---:|---|---|---:|"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as scratch:
            data_dir = Path(scratch) / "data"
            fill_store(data_dir / "gallery.db", cache, size, args.frames, "placeholder")
            env = {"GAITLAB_LOG_FORMAT": "text", "GAITLAB_THREADS": "2"}
            server = Server(args.source, data_dir, env=env)
            server.start(timeout=900)
            try:
                admin = httpx.Client(base_url=server.url, timeout=120)
                quiet, _ = measure(server.url, upload)

                busy, took = measure(
                    server.url, upload, during=partial(refresh, admin, args.target.resolve())
                )
                state = admin.get("/admin/model").json()
                assert state["refresh"]["state"] == "done", state
                assert state["active"]["version"] == target
            finally:
                server.stop()
        q50, q99 = (1000 * np.percentile(quiet, q) for q in (50, 99))
        b50, b99 = (1000 * np.percentile(busy, q) for q in (50, 99))
        print(
            f"| {size:,} | {took:.1f} | {size / took:.0f} | {q50:.1f} / {q99:.1f} "
            f"| {b50:.1f} / {b99:.1f} ({b99 / q99:.1f}× p99) | {len(busy)} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
