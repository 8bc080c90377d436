"""Service speed against the model's own: one run, side by side, fp32 and int8.

    python bench/service.py [--data /tmp/casia-b] [--gallery 070-074] [--probe-subject 063]
                            [--frames 30] [--requests 400] [--rounds 3] [--knobs]

For each variant of the shipped default (fp32, int8), in rounds taken back to back (this
machine's speed drifts by 10–20 % from minute to minute, so each ratio compares figures taken
seconds apart, and the medians over the rounds are printed):

- **standalone engine**: ONNX Runtime alone on the probe clip, in process, with its own
  defaults on every core (one clip; batches of 8);
- **service**: a real server (uvicorn) with its default settings, on a gallery of the
  ``--gallery`` subjects' nm-01–04 (built into a temporary store by the same model), loaded by
  ApacheBench (``ab``, written in C: the load generator costs little CPU) posting the same
  ``.npy`` clip: 1 client, then 8. Server-side time is ``/metrics``' mean ``/identify`` request
  time (what the server spends, HTTP parsing included; client and network not);
- **during a refresh**: 1 client without, then while ``POST /admin/model`` re-embeds the gallery
  with a copy of the model (same cost, another version): p50 and p99 as the client saw them.

``--overhead`` measures only the service's own cost: the same requests against the tests' toy
model (a mean frame, next to free), as identify/s and server CPU (all threads) per request,
beside the floor of any Python ASGI server on this machine (``bench/asgi_floor.py``: a bare
ASGI app and a one-route FastAPI app, each on h11 and on httptools); then, with the toy model
and with int8, the service taking the clip as a multipart form and as the raw body, and a bare
ASGI front on the same recognizer (``bench/bare_front.py``), each beside the standalone engine's
batch of 8. (Issue 16's fast lane was measured here beside them before it was removed: docs
"Performance".)
``--knobs`` also measures the fp32 server with the defaults undone one setting at a time. The
request path is profiled in process first (decode, normalise, embed, search).
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gaitlab.gallery_build import build_into_store  # noqa: E402
from models.card import METADATA_KEY, ModelCard, card_path  # noqa: E402
from models.default import DEFAULT_INT8, DEFAULT_MODEL  # noqa: E402
from models.engine import EmbeddingEngine, available_cores  # noqa: E402
from models.scoring import part_normalise  # noqa: E402
from models.silhouette import normalise_clip, normalise_silhouette  # noqa: E402
from service.clips import ClipLimits, decode_clip  # noqa: E402
from service.gallery import open_store  # noqa: E402
from service.gallery.embedded import build_index  # noqa: E402
from tests.helpers import toy_model  # noqa: E402
from tests.service.live_server import Server, free_port  # noqa: E402
from training.data.cache import SilhouetteCache  # noqa: E402
from training.data.subjects import parse_subjects  # noqa: E402

BOUNDARY = "gaitlabbenchboundary"


def knobs(cores: int) -> list[tuple[str, dict]]:
    """(name, environment): each row undoes one more of the defaults' choices."""
    one_worker = {"GAITLAB_MODEL_WORKERS": "1"}
    unbatched = {**one_worker, "GAITLAB_BATCH_MAX": "1"}
    every_core = {**unbatched, "GAITLAB_SEARCH_THREADS": str(cores)}
    return [
        ("defaults", {}),
        ("one model worker (no narrow calls side by side)", one_worker),
        ("… and no batching (one clip a call)", unbatched),
        ("… and FAISS on every core", every_core),
        ("… and 40 request threads", {**every_core, "GAITLAB_REQUEST_THREADS": "40"}),
        ("defaults, model threads not spinning", {"GAITLAB_SPIN": "false"}),
    ]


def timed(fn, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def multipart(clip: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, clip)
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="clip"; filename="p.npy"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + buffer.getvalue() + f"\r\n--{BOUNDARY}--\r\n".encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
RAW = "application/x-npy"


def content_type(body: Path) -> str:
    """A body file's content type: ``*.npy`` is sent raw, anything else as the form."""
    return RAW if body.suffix == ".npy" else MULTIPART


def ab(url: str, body: Path, requests: int, clients: int) -> dict:
    """ApacheBench: requests/s, p50 and p99 (ms) as the clients saw them."""
    command = ["ab", "-q", "-n", str(requests), "-c", str(clients), "-p", str(body)]
    command += ["-T", content_type(body), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    # ab counts an answer whose length differs from the first as failed: the scores' last
    # digits may differ between a batched call and a lone one (within 1e-5), so only a broken
    # connection or a status other than 2xx is a failure here
    broken = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: \d+, Exceptions: (\d+)\)", out)
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if (broken and any(int(n) for n in broken.groups())) or non_2xx:
        raise RuntimeError(f"ab saw failures:\n{out}")
    percentile = {
        int(m.group(1)): float(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+(\d+)", out, re.M)
    }
    rate = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    return {"rate": rate, "p50": percentile[50], "p99": percentile[99]}


def server_side(client: httpx.Client) -> dict[str, tuple[float, float]]:
    """(sum s, count) of the /identify request time and each step, from ``/metrics``."""
    text = client.get("/metrics").text
    found = {}
    for name, pattern in {
        "request": r"gaitlab_request_duration_seconds_(sum|count)"
        r'\{method="POST",route="/identify"\}',
        "embed": r'gaitlab_step_duration_seconds_(sum|count)\{step="embed"\}',
        "model": r'gaitlab_step_duration_seconds_(sum|count)\{step="model"\}',
        "search": r'gaitlab_step_duration_seconds_(sum|count)\{step="search"\}',
        "batch": r"gaitlab_embed_batch_clips_(sum|count)",
    }.items():
        values = dict(re.findall(rf"^{pattern} (\S+)", text, re.M))
        found[name] = (float(values.get("sum", 0)), float(values.get("count", 0)))
    return found


def mean_between(before: dict, after: dict, name: str) -> float:
    total = after[name][0] - before[name][0]
    count = after[name][1] - before[name][1]
    return total / count if count else float("nan")


def copy_with_version(model: Path, folder: Path) -> Path:
    """The model with its card's version changed: a refresh to it re-embeds everything."""
    target = folder / f"refresh-{model.name}"
    proto = onnx.load(str(model))
    card = ModelCard.from_json(card_path(model).read_text())
    card.version += "-bench-copy"
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = card.to_json()
    onnx.save(proto, str(target))
    card_path(target).write_text(card.to_json())
    return target


def profile_request_path(model: Path, clip: np.ndarray, store_path: Path) -> None:
    """One identify's steps in process, median ms."""
    buffer = io.BytesIO()
    np.save(buffer, clip)
    upload, limits = buffer.getvalue(), ClipLimits()
    engine = EmbeddingEngine(model, device="cpu", spin=False)
    decoded = decode_clip(upload, limits)
    store = open_store(store_path)
    index = build_index(engine, store)
    store.close()
    embedding = engine.embed(clip[None])
    vector = part_normalise(embedding)[0]
    steps = {
        "decode (.npy)": timed(lambda: decode_clip(upload, limits), 200),
        "normalise, frame by frame (before)": timed(
            lambda: [normalise_silhouette(frame) for frame in decoded], 200
        ),
        "normalise, whole array (now)": timed(lambda: normalise_clip(decoded), 200),
        "embed (one clip)": timed(lambda: engine.embed(clip[None]), 100),
        "part-normalise": timed(lambda: part_normalise(embedding), 200),
        f"search ({len(index)} samples)": timed(lambda: index.search(vector, 5), 200),
    }
    print(f"\n### One identify in process ({model.name}), median ms\n")
    print("| step | ms |\n|---|---:|")
    for name, seconds in steps.items():
        print(f"| {name} | {1000 * seconds:.3f} |")


def standalone(engine: EmbeddingEngine, clip: np.ndarray) -> tuple[float, float]:
    """The engine alone: (one clip ms, batch-of-8 clips/s), medians."""
    eight = np.repeat(clip[None], 8, axis=0)
    one_s = timed(lambda: engine.embed(clip[None]), 100)
    return 1000 * one_s, 8 / timed(lambda: engine.embed(eight), 20)


def measure(
    model: Path,
    data_dir: Path,
    clip: np.ndarray,
    body: Path,
    requests: int,
    rounds: int,
    env: dict,
    refresh_to: Path | None = None,
) -> dict:
    """Rounds of (standalone engine, service at 1 client, service at 8 clients), back to back,
    so each ratio compares figures taken seconds apart; medians over the rounds. Then, with
    ``refresh_to``, 1 client without and during a refresh."""
    engine = EmbeddingEngine(model, device="cpu")  # ONNX Runtime's defaults, all cores
    server = Server(model, data_dir, env={"GAITLAB_LOG_FORMAT": "text", **env}).start(600)
    url = f"{server.url}/identify?threshold=-1"
    rows = []
    try:
        client = httpx.Client(base_url=server.url, timeout=120)
        ab(url, body, 50, 1)  # warm-up
        for _ in range(rounds):
            one_ms, batch_rate = standalone(engine, clip)
            before = server_side(client)
            ab(url, body, requests, 1)
            after = server_side(client)
            eight = ab(url, body, 2 * requests, 8)
            again = server_side(client)
            row = {"one_ms": one_ms, "batch_rate": batch_rate, "eight_rate": eight["rate"]}
            row["server_ms"] = 1000 * mean_between(before, after, "request")
            for step in ("embed", "model", "search"):
                row[f"{step}_ms"] = 1000 * mean_between(before, after, step)
            row["clips_per_call"] = mean_between(after, again, "batch")
            rows.append(row)
        result = {key: float(np.median([row[key] for row in rows])) for key in rows[0]}
        result["one_ratio"] = float(np.median([r["server_ms"] / r["one_ms"] for r in rows]))
        result["eight_ratio"] = float(np.median([r["eight_rate"] / r["batch_rate"] for r in rows]))
        if refresh_to is not None:
            result["without"] = ab(url, body, requests, 1)
            client.post("/admin/model", data={"path": str(refresh_to)}).raise_for_status()
            result["during"] = ab(url, body, requests, 1)
            state = client.get("/model").json()["refresh"]
            result["refresh_state"] = f"{state['state']} ({state['done']}/{state['total']})"
    finally:
        server.stop()
    return result


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_cpu(pid: int, url: str, body: Path, requests: int) -> dict:
    """ApacheBench at 1 and 8 clients against a warm server: rate, p50 and the server's CPU
    ms per request (all its threads)."""
    ab(url, body, 50, 1)
    result = {}
    for clients in (1, 8):
        count = requests * clients // 4 + requests
        before = process_cpu_s(pid)
        got = ab(url, body, count, clients)
        result[clients] = {**got, "cpu_ms": 1000 * (process_cpu_s(pid) - before) / count}
    return result


def overhead(data: Path, gallery: str, body: Path, raw: Path, requests: int, scratch: Path) -> dict:
    """The service's own cost per request, with a model that costs next to nothing (the tests'
    toy model: a mean frame), beside the floor of any Python ASGI server here
    (``bench/asgi_floor.py``) and beside the service with ``/identify`` answered without
    FastAPI (``bench/bare_front.py``); then both fronts with int8, each beside the standalone
    engine's batch of 8 measured just before: {name: {clients: figures}}."""
    rows = {}
    for app, http in itertools.product(("bare", "one_route"), ("h11", "httptools")):
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", f"asgi_floor:{app}", "--app-dir", "bench"]
        command += ["--port", str(port), "--http", http, "--no-access-log"]
        command += ["--log-level", "warning"]
        name = {"bare": "bare ASGI app", "one_route": "FastAPI, one upload route"}[app]
        rows[f"{name}, {http}"] = serve_and_load(command, port, "/identify", body, requests)
    toy = toy_model(scratch / "toy.onnx", threshold=0.5)
    probe = SilhouetteCache.load(data, parse_subjects("063"), ["nm-05"], 30, progress=False)
    eight = np.repeat(probe.sequence(0)[None, :30], 8, axis=0)
    for label, model in (("toy model", toy), ("int8", DEFAULT_INT8)):
        data_dir = scratch / f"overhead-{label}"
        conditions = ["nm-01", "nm-02", "nm-03", "nm-04"]
        build_into_store(data, parse_subjects(gallery), conditions, data_dir, model)
        engine = EmbeddingEngine(model, device="cpu") if model == DEFAULT_INT8 else None
        service = [sys.executable, "-m", "gaitlab", "serve", "--device", "cpu"]
        fronts = {  # name: (server, body): the same clip, as the form or as the body
            "the service, multipart form": (service, body),
            "the service, raw body": (service, raw),
            "bare ASGI front on the service (multipart)": (
                [sys.executable, "bench/bare_front.py"],
                body,
            ),
        }
        for front, (command, sent) in fronts.items():
            port = free_port()
            command = [*command, "--port", str(port), "--data-dir", str(data_dir)]
            command += ["--model", str(model)]
            batch_rate = engine and 8 / timed(lambda e=engine: e.embed(eight), 20)
            got = serve_and_load(command, port, "/identify?threshold=-1", sent, requests)
            rows[f"{front} ({label})"] = {**got, "batch_rate": batch_rate}
    return rows


def serve_and_load(command: list[str], port: int, path: str, body: Path, requests: int) -> dict:
    """Start ``command`` (a server on ``port``), load it (``load_cpu``), stop it."""
    env = {**os.environ, "GAITLAB_LOG_FORMAT": "text", "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, 600)
        return load_cpu(server.pid, f"http://127.0.0.1:{port}{path}", body, requests)
    finally:
        server.terminate()
        server.wait(20)


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/casia-b"))
    parser.add_argument("--gallery", default="070-074")
    parser.add_argument("--probe-subject", default="063")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--knobs", action="store_true")
    parser.add_argument(
        "--overhead", action="store_true", help="only the service's own cost (a near-free model)"
    )
    args = parser.parse_args()
    if shutil.which("ab") is None:
        print("needs ApacheBench: apt-get install apache2-utils", file=sys.stderr)
        return 2
    threads = available_cores()
    probes = SilhouetteCache.load(
        args.data, parse_subjects(args.probe_subject), ["nm-05"], args.frames, progress=False
    )
    clip = probes.sequence(0)[: args.frames]
    print(
        f"probe: one {len(clip)}-frame 64×44 clip (.npy upload); {threads} usable cores; "
        f"load generator: ApacheBench (ab), {args.requests} requests at 1 client, "
        f"{2 * args.requests} at 8"
    )
    rows, knob_rows = {}, []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        body = scratch / "body.bin"
        body.write_bytes(multipart(clip))
        raw = scratch / "clip.npy"
        np.save(raw, clip)
        if args.overhead:
            got = overhead(args.data, args.gallery, body, raw, args.requests, scratch)
            print("\n### The service's own cost beside the floor (toy model: a mean frame)\n")
            print(
                "| server | 1 client: identify/s | server CPU ms per request | "
                "8 clients: identify/s | server CPU ms per request | "
                "8 clients ÷ standalone batch of 8 |"
            )
            print("|---|---:|---:|---:|---:|---:|")
            for name, row in got.items():
                ratio = row.get("batch_rate")
                ratio = f"×{row[8]['rate'] / ratio:.2f} (of {ratio:.0f}/s)" if ratio else "–"
                print(
                    f"| {name} | {row[1]['rate']:.0f} | {row[1]['cpu_ms']:.2f} | "
                    f"{row[8]['rate']:.0f} | {row[8]['cpu_ms']:.2f} | {ratio} |"
                )
            return 0
        for variant, model in (("fp32", DEFAULT_MODEL), ("int8", DEFAULT_INT8)):
            data_dir = scratch / variant
            built = build_into_store(
                args.data,
                parse_subjects(args.gallery),
                ["nm-01", "nm-02", "nm-03", "nm-04"],
                data_dir,
                model,
            )
            if variant == "fp32":
                print(f"gallery: {built.sequences} samples of {built.subjects} subjects")
                profile_request_path(model, clip, data_dir / "gallery.db")
            copy = copy_with_version(model, scratch)
            rows[variant] = measure(
                model, data_dir, clip, body, args.requests, args.rounds, {}, copy
            )
            if args.knobs and variant == "fp32":
                for name, env in knobs(threads):
                    measured = rows[variant] if not env else measure(
                        model, data_dir, clip, body, args.requests, args.rounds, env
                    )  # fmt: skip
                    knob_rows.append((name, measured))

    print(f"\n### Standalone engine against the service (medians of {args.rounds} rounds)\n")
    print(
        "| | standalone 1 clip ms | service 1 client, server-side ms | ratio (≤ 1.5) | "
        "standalone batch of 8, clips/s | service 8 clients, identify/s | ratio (≥ 0.85) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for variant, got in rows.items():
        print(
            f"| {variant} | {got['one_ms']:.2f} | {got['server_ms']:.2f} | ×{got['one_ratio']:.2f} "
            f"| {got['batch_rate']:.0f} | {got['eight_rate']:.0f} | ×{got['eight_ratio']:.2f} |"
        )

    print("\n### Inside the service (1 client; /metrics means) and during a refresh\n")
    print(
        "| | request ms | embed ms | model call ms | search ms | clips per call at 8 "
        "clients | 1 client p50 / p99 ms | during a refresh | refresh at the end |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for variant, got in rows.items():
        without, during = got["without"], got["during"]
        print(
            f"| {variant} | {got['server_ms']:.2f} | {got['embed_ms']:.2f} | "
            f"{got['model_ms']:.2f} | {got['search_ms']:.3f} | {got['clips_per_call']:.1f} | "
            f"{without['p50']:.0f} / {without['p99']:.0f} | "
            f"{during['p50']:.0f} / {during['p99']:.0f} | {got['refresh_state']} |"
        )

    if knob_rows:
        print("\n### What each knob buys (fp32), one more setting undone per row\n")
        print("| configuration | 1 client server-side ms | ratio | 8 clients identify/s | ratio |")
        print("|---|---:|---:|---:|---:|")
        for name, got in knob_rows:
            print(
                f"| {name} | {got['server_ms']:.2f} | ×{got['one_ratio']:.2f} | "
                f"{got['eight_rate']:.0f} | ×{got['eight_ratio']:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
