"""Legitimate clients under attack: identify success rate and latency during each kind of flood,
beside the same clients with no flood, against one real server (uvicorn, API keys, default
limits, the shipped model) on loopback.

    python bench/abuse.py [--seconds 10] [--attackers 4] [--model FILE.onnx]

Two legitimate clients identify 30-frame clips back to back (gallery of 20 subjects). Each flood
runs ``--seconds`` with ``--attackers`` threads (the keyless trickle opens 16 connections),
then the next starts. Every loop is bounded in time; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.default import default_model_path  # noqa: E402
from tests.service.live_server import (  # noqa: E402
    ADMIN_KEY,
    CLIENT_KEY,
    Server,
)
from tests.service.test_hostile import (  # noqa: E402
    as_zip,
    many_page_tiff,
    mjpeg_video,
    png,
    stream_until_answered,
)
from tests.service.test_operations_e2e import aligned_clip  # noqa: E402

CLIENT = {"X-API-Key": CLIENT_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}


def raw(server: Server, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(head.encode())
    return sock


def status_of(sock: socket.socket) -> str:
    try:
        sock.settimeout(30)
        first = sock.recv(64)
        return first.split(b" ")[1].decode() if first else "closed"
    except OSError:
        return "closed"
    finally:
        sock.close()


class Payloads:
    """The attacks of issue 13, one request each."""

    def __init__(self, server: Server, scratch: Path):
        self.server = server
        self.url = server.url
        big = np.zeros((2000, 2000), np.uint8)
        big[200:1800, 900:1100] = 255
        self.zip_bomb = as_zip({f"{t:03d}.png": png(big) for t in range(200)})
        self.tiff = many_page_tiff(100_000)
        self.video = mjpeg_video(scratch / "huge.avi", 8000)

    def chunked_oversize(self, http: httpx.Client) -> str:
        sock = raw(
            self.server,
            f"POST /identify HTTP/1.1\r\nHost: x\r\nX-API-Key: {CLIENT_KEY}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            "Content-Length: 300\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        opening = b'--b\r\nContent-Disposition: form-data; name="clip"; filename="c"\r\n\r\n'
        stream_until_answered(sock, [opening] + [b"\x00" * 65536] * 2000, chunked=True)
        return status_of(sock)

    def keyless_trickle(self, http: httpx.Client) -> str:
        sock = raw(
            self.server,
            "POST /identify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n",
        )
        try:
            for _ in range(20):
                sock.sendall(b"x")
                time.sleep(0.5)
        except OSError:
            pass
        return status_of(sock)

    def zip_pixels(self, http: httpx.Client) -> str:
        files = {"clip": ("c.zip", self.zip_bomb)}
        return str(http.post("/identify", files=files, headers=CLIENT).status_code)

    def tiff_pages(self, http: httpx.Client) -> str:
        files = {"clip": ("c.tif", self.tiff)}
        return str(http.post("/identify", files=files, headers=CLIENT).status_code)

    def bad_metadata(self, http: httpx.Client) -> str:
        deep = '{"a": ' * 300 + "1" + "}" * 300
        answer = http.post(
            "/gallery/subjects/attacker/samples",
            files={"clip": ("c.npy", aligned_clip(1))},
            data={"metadata": deep},
            headers=ADMIN,
        )
        return str(answer.status_code)

    def made_up_methods(self, http: httpx.Client) -> str:
        method = f"X{np.random.randint(1 << 30)}"
        return str(http.request(method, "/identify").status_code)

    def malformed(self, http: httpx.Client) -> str:
        answer = http.get("/gallery/subjects", params={"offset": 2**63}, headers=CLIENT)
        return str(answer.status_code)

    def huge_video(self, http: httpx.Client) -> str:
        files = {"clip": ("v.avi", self.video)}
        return str(http.post("/identify", files=files, headers=CLIENT).status_code)

    def readyz(self, http: httpx.Client) -> str:
        return str(http.get("/readyz").status_code)

    def broken_multipart(self, http: httpx.Client) -> str:
        answer = http.post(
            "/identify",
            content=b'--b\r\nContent-Disposition: form-data; name="clip"\r\n\r\nno end',
            headers={**CLIENT, "Content-Type": "multipart/form-data; boundary=b"},
        )
        return str(answer.status_code)


FLOODS = [
    ("1 chunked uploads past the limit", "chunked_oversize", 4),
    ("2 keyless trickling bodies", "keyless_trickle", 16),
    ("3 zip of 200 PNGs of 2000×2000", "zip_pixels", 4),
    ("4 TIFF of 100,000 pages", "tiff_pages", 4),
    ("5 metadata nested 300 deep", "bad_metadata", 4),
    ("6 made-up HTTP methods", "made_up_methods", 4),
    ("7 offset 2^63", "malformed", 4),
    ("8 MJPEG of 8000×8000 frames", "huge_video", 4),
    ("9 /readyz without a key", "readyz", 4),
    ("10 broken multipart bodies", "broken_multipart", 4),
]


def run_for(url: str, seconds: float, threads: int, work: Callable[[httpx.Client], str]) -> Counter:
    """``work`` back to back from ``threads`` threads for ``seconds``; counts of its results."""
    results: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while time.monotonic() < deadline:
                try:
                    outcome = work(http)
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                with lock:
                    results[outcome] += 1

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def legit_client(latencies: list[float]) -> Callable[[httpx.Client], str]:
    clip = {"clip": ("c.npy", aligned_clip(5))}

    def identify(http: httpx.Client) -> str:
        started = time.perf_counter()
        answer = http.post("/identify", files=clip, headers=CLIENT)
        if answer.status_code == 200:
            latencies.append(time.perf_counter() - started)
        return str(answer.status_code)

    return identify


def measure(url: str, seconds: float, attack: Callable | None, attackers: int) -> dict:
    latencies: list[float] = []
    attacker_results: Counter = Counter()
    if attack is not None:
        flood = threading.Thread(
            target=lambda: attacker_results.update(run_for(url, seconds, attackers, attack))
        )
        flood.start()
    legit = run_for(url, seconds, 2, legit_client(latencies))
    if attack is not None:
        flood.join()
    total = sum(legit.values())
    ms = np.array(latencies) * 1000
    return {
        "legit_requests": total,
        "legit_ok": 100 * legit["200"] / total if total else 0.0,
        "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
        "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
        "legit_statuses": dict(legit),
        "attacker": dict(attacker_results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = {
            "GAITLAB_ADMIN_KEYS": ADMIN_KEY,
            "GAITLAB_CLIENT_KEYS": CLIENT_KEY,
            "GAITLAB_MAX_UPLOAD_BYTES": str(64 * 1024 * 1024),
            "GAITLAB_LOG_FORMAT": "text",
        }
        model = args.model or default_model_path()
        server = Server(model, Path(scratch) / "data", env=env).start()
        try:
            admin = httpx.Client(base_url=server.url, timeout=60, headers=ADMIN)
            files = [("clips", (f"{n}.npy", aligned_clip(n))) for n in range(20)]
            manifest = json.dumps([{"subject_id": f"s{n}"} for n in range(20)])
            admin.post("/gallery/samples", files=files, data={"manifest": manifest})
            payloads = Payloads(server, Path(scratch))
            rows = [("no flood", measure(server.url, args.seconds, None, 0))]
            for title, name, threads in FLOODS:
                count = threads if name == "keyless_trickle" else args.attackers
                attack = getattr(payloads, name)
                rows.append((title, measure(server.url, args.seconds, attack, count)))
                print(f"  done: {title}", file=sys.stderr)
        finally:
            server.stop()
    base = rows[0][1]
    print(f"\nlegitimate identify, 2 clients, {args.seconds:g} s per row ({model.name})\n")
    print("| flood | attacker answers | legit ok | legit p50 ms | p99 ms | p99 vs none |")
    print("|---|---|---:|---:|---:|---:|")
    for title, row in rows:
        attacker = ", ".join(f"{k}×{v}" for k, v in sorted(row["attacker"].items())) or "–"
        ratio = row["p99"] / base["p99"] if base["p99"] else float("nan")
        print(
            f"| {title} | {attacker} | {row['legit_ok']:.1f} % of {row['legit_requests']} "
            f"| {row['p50']:.1f} | {row['p99']:.1f} | {ratio:.2f}× |"
        )
    if args.json:
        args.json.write_text(json.dumps(dict(rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
