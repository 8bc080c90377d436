"""Service speed against the model's own: one run, side by side, fp32 and int8.

    python bench/service.py [--data /tmp/casia-b] [--gallery 070-074] [--probe-subject 063]
                            [--frames 30] [--requests 400] [--knobs]

For each variant of the shipped default (fp32, int8):

- **standalone engine**: ONNX Runtime alone on the probe clip, in process (one clip; batches
  of 8), with the service's thread settings and with ONNX Runtime's defaults (spinning);
- **service**: a real server (uvicorn) on a gallery of the ``--gallery`` subjects' nm-01–04
  (built into a temporary store by the same model), loaded by ApacheBench (``ab``, written in
  C: the load generator costs little CPU) posting the same ``.npy`` clip: 1 client, then 8.
  Server-side time is ``/metrics``' mean ``/identify`` request time (what the server spends,
  HTTP parsing included, client and network not);
- **during a refresh**: 1 client again while ``POST /admin/model`` re-embeds the gallery with a
  copy of the model (same cost, another version); p99 with and without.

Ratios are the service against the standalone engine's best. ``--knobs`` also starts the fp32
server with the thread budget and batching undone one knob at a time and prints what each
bought. The request path is profiled in process first (decode, normalise, embed, search).
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
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
from service.gallery.store import open_store  # noqa: E402
from service.recognition import build_index  # noqa: E402
from tests.service.live_server import Server  # noqa: E402
from training.data.cache import SilhouetteCache  # noqa: E402
from training.data.subjects import parse_subjects  # noqa: E402

BOUNDARY = "gaitlabbenchboundary"


def knobs(cores: int) -> list[tuple[str, dict]]:
    """(name, environment): each row undoes one more of the defaults' choices."""
    unbatched = {"GAITLAB_BATCH_MAX": "1"}
    every_core = {**unbatched, "GAITLAB_SEARCH_THREADS": str(cores)}
    return [
        ("defaults (budget + batching)", {}),
        ("no batching (one clip a call)", unbatched),
        ("… and FAISS on every core", every_core),
        ("… and ORT threads spinning", spinning := {**every_core, "GAITLAB_SPIN": "true"}),
        ("… and 40 request threads", {**spinning, "GAITLAB_REQUEST_THREADS": "40"}),
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


def ab(url: str, body: Path, requests: int, clients: int) -> dict:
    """ApacheBench: requests/s, p50 and p99 (ms) as the clients saw them."""
    command = ["ab", "-q", "-n", str(requests), "-c", str(clients), "-p", str(body)]
    command += ["-T", f"multipart/form-data; boundary={BOUNDARY}", url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if failed or non_2xx:
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


def standalone(model: Path, clip: np.ndarray, threads: int) -> dict:
    """The engine alone: one-clip seconds and batch-of-8 clips/s, spinning off and on."""
    found = {}
    for spin in (False, True):
        engine = EmbeddingEngine(model, device="cpu", threads=threads, spin=spin)
        one = timed(lambda e=engine: e.embed(clip[None]), 200)
        eight = timed(lambda e=engine: e.embed(np.repeat(clip[None], 8, axis=0)), 50)
        found[spin] = {"one_ms": 1000 * one, "batch8_rate": 8 / eight}
    return found


def run_server(
    model: Path, data_dir: Path, body: Path, requests: int, env: dict, refresh_to: Path | None
) -> dict:
    server = Server(model, data_dir, env={"GAITLAB_LOG_FORMAT": "text", **env}).start(600)
    url = f"{server.url}/identify?threshold=-1"
    result = {}
    try:
        client = httpx.Client(base_url=server.url, timeout=120)
        ab(url, body, 50, 1)  # warm-up
        before = server_side(client)
        result["one"] = ab(url, body, requests, 1)
        after = server_side(client)
        result["server_ms"] = 1000 * mean_between(before, after, "request")
        for step in ("embed", "model", "search"):
            result[f"{step}_ms"] = 1000 * mean_between(before, after, step)
        result["eight"] = ab(url, body, 2 * requests, 8)
        again = server_side(client)
        result["batch_mean"] = mean_between(after, again, "batch")
        if refresh_to is not None:
            answer = client.post("/admin/model", data={"path": str(refresh_to)})
            answer.raise_for_status()
            result["during"] = ab(url, body, requests, 1)
            state = client.get("/model").json()["refresh"]
            result["refresh_running_at_end"] = state["state"] == "running"
            result["refresh_progress"] = f"{state['done']}/{state['total']}"
    finally:
        server.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/casia-b"))
    parser.add_argument("--gallery", default="070-074")
    parser.add_argument("--probe-subject", default="063")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--knobs", action="store_true")
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
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        body = scratch / "body.bin"
        body.write_bytes(multipart(clip))
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
            alone = standalone(model, clip, threads)
            copy = copy_with_version(model, scratch)
            served = run_server(model, data_dir, body, args.requests, {}, copy)
            rows[variant] = (alone, served)
            if args.knobs and variant == "fp32":
                knob_rows = []
                for name, env in knobs(threads):
                    if not env:
                        knob_rows.append((name, served))
                        continue
                    knob_rows.append((name, run_server(model, data_dir, body, args.requests,
                                                       env, None)))  # fmt: skip

    print("\n### Standalone engine against the service\n")
    print(
        "| | standalone 1 clip ms | standalone batch of 8, clips/s | service 1 client, "
        "server-side ms | ratio (≤ 1.5) | service 8 clients, identify/s | ratio (≥ 0.85) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for variant, (alone, served) in rows.items():
        one = min(alone[s]["one_ms"] for s in alone)
        eight = max(alone[s]["batch8_rate"] for s in alone)
        print(
            f"| {variant} | {one:.2f} | {eight:.0f} | {served['server_ms']:.2f} | "
            f"×{served['server_ms'] / one:.2f} | {served['eight']['rate']:.0f} | "
            f"×{served['eight']['rate'] / eight:.2f} |"
        )
    print("\n(standalone: the better of ORT spinning on/off; each:)")
    for variant, (alone, _) in rows.items():
        for spin, figures in alone.items():
            print(
                f"  {variant} spin={'on' if spin else 'off'}: one clip {figures['one_ms']:.2f} ms, "
                f"batch of 8 {figures['batch8_rate']:.0f} clips/s"
            )

    print("\n### Inside the service (1 client; /metrics means) and during a refresh\n")
    print(
        "| | request ms | embed ms | model call ms | search ms | clips per call at 8 "
        "clients | 1 client p50 / p99 ms | p50 / p99 during a refresh | refresh at end |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for variant, (_, served) in rows.items():
        one, during = served["one"], served["during"]
        running = "still running" if served["refresh_running_at_end"] else "had finished"
        print(
            f"| {variant} | {served['server_ms']:.2f} | {served['embed_ms']:.2f} | "
            f"{served['model_ms']:.2f} | {served['search_ms']:.3f} | {served['batch_mean']:.1f} | "
            f"{one['p50']:.0f} / {one['p99']:.0f} | {during['p50']:.0f} / {during['p99']:.0f} | "
            f"{running} ({served['refresh_progress']}) |"
        )

    if args.knobs:
        print("\n### What each knob buys (fp32), one setting undone per row\n")
        print("| configuration | 1 client server-side ms | 8 clients identify/s |")
        print("|---|---:|---:|")
        for name, served in knob_rows:
            print(f"| {name} | {served['server_ms']:.2f} | {served['eight']['rate']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
