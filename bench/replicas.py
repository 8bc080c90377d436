"""Replicas on one PostgreSQL gallery: how fast a write on one reaches the other, and identify
throughput of one replica against two, in one run (real uvicorn processes, a throwaway
PostgreSQL server started here, the shipped model, loopback only).

    python bench/replicas.py [--enrollments 50] [--seconds 15] [--clients 8]

Lag: a sample is enrolled on replica A; from A's answer, replica B is asked to identify the same
clip until it names the new subject (the "seen" lag, which includes B's identify time), and B's
own measure of commit-to-index time is read from its /metrics (gaitlab_replica_lag_seconds).
Throughput: ``--clients`` threads identify back to back against A alone, then split between A
and B. On one machine the two replicas share the same cores: the second replica adds
availability here, and throughput only where it gets cores of its own.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.default import default_model_path  # noqa: E402
from tests.postgres_server import ThrowawayPostgres, find_bindir  # noqa: E402
from tests.service.live_server import Server  # noqa: E402


def unique_clip(n: int, frames: int = 30) -> bytes:
    """A clip no other ``n`` gives, even after normalisation: random blocks in a fixed frame."""
    rng = np.random.default_rng(n)
    blocks = (rng.random((frames, 8, 4)) > 0.5).astype(np.uint8) * 255
    clip = np.zeros((frames, 64, 44), np.uint8)
    clip[:, :, 2:42] = np.repeat(np.repeat(blocks, 8, axis=1), 10, axis=2)
    clip[:, 0, 2:42] = 255  # the full height and width are always occupied
    clip[:, 63, 2:42] = 255
    buffer = io.BytesIO()
    np.save(buffer, clip)
    return buffer.getvalue()


def top_subject(client: httpx.Client, clip: bytes) -> str | None:
    hits = client.post("/identify", files={"clip": ("c.npy", clip)}).json()["hits"]
    return hits[0]["subject_id"] if hits else None


def metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def throughput(urls: list[str], clients: int, seconds: float) -> float:
    clip = unique_clip(7)
    done = [0] * clients
    deadline = time.monotonic() + seconds

    def work(k: int) -> None:
        with httpx.Client(base_url=urls[k % len(urls)], timeout=60) as client:
            while time.monotonic() < deadline:
                if client.post("/identify", files={"clip": ("c.npy", clip)}).status_code == 200:
                    done[k] += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--enrollments", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--gallery", type=int, default=200)
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        print("no PostgreSQL server binaries on this machine", file=sys.stderr)
        return 2
    database = ThrowawayPostgres(bindir).start()
    model = default_model_path()
    replicas: list[Server] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            env = {"GAITLAB_DATABASE_URL": database.new_database(), "GAITLAB_LOG_FORMAT": "text"}
            replicas = [Server(model, Path(scratch) / f"r{n}", env=env) for n in range(2)]
            for replica in replicas:
                replica.start()
            a = httpx.Client(base_url=replicas[0].url, timeout=60)
            b = httpx.Client(base_url=replicas[1].url, timeout=60)
            files = [("clips", (f"{n}.npy", unique_clip(n))) for n in range(args.gallery)]
            manifest = json.dumps([{"subject_id": f"g{n}"} for n in range(args.gallery)])
            a.post("/gallery/samples", files=files, data={"manifest": manifest}).raise_for_status()

            seen, applied = [], []
            for n in range(args.enrollments):
                clip = unique_clip(100_000 + n)
                subject = f"new{n}"
                a.post(f"/gallery/subjects/{subject}/samples", files={"clip": ("c.npy", clip)})
                answered = time.perf_counter()
                while top_subject(b, clip) != subject:
                    if time.perf_counter() - answered > 10:
                        raise RuntimeError(f"{subject} did not reach replica B in 10 s")
                seen.append(time.perf_counter() - answered)
                applied.append(metric(b, "gaitlab_replica_lag_seconds"))
                time.sleep(0.05)

            one = throughput([replicas[0].url], args.clients, args.seconds)
            two = throughput([r.url for r in replicas], args.clients, args.seconds)
    finally:
        for replica in replicas:
            replica.stop()
        database.stop()

    seen_ms, applied_ms = np.array(seen) * 1000, np.array(applied) * 1000
    print(f"\n{args.enrollments} enrollments on A, gallery of {args.gallery}, {model.name}")
    print("| lag, A's answer → B | p50 ms | p99 ms |")
    print("|---|---:|---:|")
    print(
        f"| B's index has it (its own commit → applied) | {np.percentile(applied_ms, 50):.1f} "
        f"| {np.percentile(applied_ms, 99):.1f} |"
    )
    print(
        f"| B's identify names it (includes one identify) | {np.percentile(seen_ms, 50):.1f} "
        f"| {np.percentile(seen_ms, 99):.1f} |"
    )
    print(f"\nidentify, {args.clients} clients, {args.seconds:g} s each, same 2-core machine:")
    print(f"  one replica: {one:.1f}/s   two replicas: {two:.1f}/s   ratio {two / one:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
