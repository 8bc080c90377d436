"""Service speed: identify over HTTP (real uvicorn) against the bare engine on the same clips, with
1 and 8 concurrent clients, in one run; then FAISS search latency with 10k and 100k samples.

    python bench/service.py [--model FILE.onnx] [--data /tmp/casia-b] [--subjects 063-074]
                            [--probes 64] [--threads 2]

The gallery is the subjects' nm-01–04 (built into a temporary store); the probes are their
nm-05/06 sequences, whole, uploaded as ``.npy`` files. "Bare engine" is what the service does
for an upload minus HTTP: normalise, embed, search, in process. Prints clips/s and p50/p99
latency for each; clients are threads, each sending its next request when the last one is
answered.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gaitlab.gallery_build import build_into_store  # noqa: E402
from models.default import default_model_path  # noqa: E402
from models.engine import EmbeddingEngine  # noqa: E402
from service.gallery.index import GalleryIndex  # noqa: E402
from service.gallery.store import open_store  # noqa: E402
from service.recognition import Recognizer  # noqa: E402
from tests.service.live_server import Server  # noqa: E402
from training.data.cache import SilhouetteCache  # noqa: E402
from training.data.subjects import parse_subjects  # noqa: E402


def load(requests: Callable[[int], None], count: int, clients: int) -> tuple[float, list[float]]:
    """Run ``requests(i)`` for i < count from ``clients`` threads: (clips/s, latencies)."""
    latencies: list[float] = []
    cursor = iter(range(count))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            started = time.perf_counter()
            requests(i)
            latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count / (time.perf_counter() - started), latencies


def row(name: str, rate: float, latencies: list[float], base: float | None) -> str:
    p50, p99 = (1000 * np.percentile(latencies, q) for q in (50, 99))
    ratio = f"{rate / base:.2f}×" if base else "1.00×"
    return f"| {name} | {rate:.1f} | {p50:.1f} | {p99:.1f} | {ratio} |"


def search_latency(dim: int, sizes: list[int], queries: int = 200) -> None:
    rng = np.random.default_rng(0)
    print("\n| gallery samples | search p50 ms | p99 ms |\n|---:|---:|---:|")
    for size in sizes:
        index = GalleryIndex(dim, "bench", device="cpu")
        for first in range(0, size, 10_000):
            n = min(10_000, size - first)
            vectors = rng.standard_normal((n, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            index.add(np.arange(first, first + n), [f"s{i % 5000}" for i in range(n)], vectors)
        timings = []
        for _ in range(queries):
            query = rng.standard_normal(dim).astype(np.float32)
            started = time.perf_counter()
            index.search(query / np.linalg.norm(query), 5)
            timings.append(time.perf_counter() - started)
        p50, p99 = (1000 * np.percentile(timings, q) for q in (50, 99))
        print(f"| {size:,} | {p50:.2f} | {p99:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=Path("/tmp/casia-b"))
    parser.add_argument("--subjects", default="063-074")
    parser.add_argument("--probes", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--search-sizes", default="10000,100000")
    args = parser.parse_args()
    model = args.model or default_model_path()
    subjects = parse_subjects(args.subjects)

    probes = SilhouetteCache.load(args.data, subjects, ["nm-05", "nm-06"], 5, progress=False)
    chosen = np.random.default_rng(0).choice(len(probes), args.probes, replace=False)
    clips = [probes.sequence(int(i)) for i in chosen]
    uploads = []
    for clip in clips:
        buffer = io.BytesIO()
        np.save(buffer, clip)
        uploads.append(buffer.getvalue())
    print(
        f"model {model.name}; {len(clips)} probe clips of {np.mean([len(c) for c in clips]):.0f} "
        f"frames on average; {args.threads} threads"
    )

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"
        built = build_into_store(
            args.data, subjects, ["nm-01", "nm-02", "nm-03", "nm-04"], data_dir, model
        )
        print(f"gallery: {built.sequences} samples of {built.subjects} subjects")

        store = open_store(data_dir / "gallery.db")
        engine = EmbeddingEngine(model, device="cpu", threads=args.threads)
        recognizer = Recognizer(engine, store)
        print(
            "\n| path | clips/s | p50 ms | p99 ms | vs bare, 1 client |\n|---|---:|---:|---:|---:|"
        )
        results = {}

        def bare(i: int) -> None:
            recognizer.identify(uploads[i % len(uploads)], threshold=-1.0)

        load(bare, len(uploads), 1)  # warm-up: every clip length once
        for clients in (1, 8):
            results["bare", clients] = load(bare, 4 * len(uploads), clients)
        store.close()

        env = {"GAITLAB_THREADS": str(args.threads), "GAITLAB_MAX_CONCURRENCY": "64"}
        env["GAITLAB_LOG_FORMAT"] = "text"
        server = Server(model, data_dir, env=env).start()
        try:
            http = httpx.Client(
                base_url=server.url, timeout=120, limits=httpx.Limits(max_connections=16)
            )

            def identify(i: int) -> None:
                files = {"clip": ("p.npy", uploads[i % len(uploads)], "application/octet-stream")}
                answer = http.post("/identify", files=files, params={"threshold": -1.0})
                answer.raise_for_status()

            load(identify, len(uploads), 1)  # warm-up: every clip length once
            for clients in (1, 8):
                results["http", clients] = load(identify, 4 * len(uploads), clients)
        finally:
            server.stop()

        base = results["bare", 1][0]
        for (path, clients), (rate, latencies) in results.items():
            kind = "bare engine (in process)" if path == "bare" else "HTTP /identify"
            name = f"{kind}, {clients} client{'s' if clients > 1 else ''}"
            print(row(name, rate, latencies, base))

    dim = int(np.prod(EmbeddingEngine(model, device="cpu").embed(clips[0][None]).shape[1:]))
    search_latency(dim, [int(n) for n in args.search_sizes.split(",")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
