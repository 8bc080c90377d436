"""Search at gallery scale: exact against approximate (IVF) for 10k, 100k and 1M samples.

    python bench/gallery_scale.py [--sizes 200,10000,100000,1000000] [--per-subject 10]
                                  [--queries 200] [--data /tmp/casia-b] [--real-subjects 001-074]

Synthetic galleries: unit vectors of the shipped default's size (2,048 floats), ``--per-subject``
samples around one random centre per subject; queries are fresh samples around random
subjects' centres (probes of enrolled people). For each size, with the service's default index
policy: index build time (a start-up), build time again with the trained centroids kept (a
restart), resident memory per sample, identify latency (the served default
embedding one 30-frame clip, then the search: median and p99, ms) with exact (``exact=true``)
and approximate search, the approximate identify against the smallest gallery's measured
alongside it (calls alternating: this machine's speed drifts from minute to minute), top-1
subject agreement of approximate with exact search, and removal: samples removed one at a time
until their tombstones are compacted (median ms of one removal, then the compaction's ms, which
is what every removal cost before tombstones). A size that would not fit in memory is not
measured, and says so.

Then real embeddings: the served default's embeddings of CASIA-B ``--real-subjects`` (gallery:
nm-01–04, bg-01, cl-01; probes: nm-05/06, bg-02, cl-02), forced onto the approximate index, and
the same agreement measured.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.default import default_model_path  # noqa: E402
from models.engine import EmbeddingEngine  # noqa: E402
from models.scoring import part_normalise  # noqa: E402
from service.gallery.index import GalleryIndex, IndexPolicy  # noqa: E402

DIM = 2048
SPREAD = 0.6  # noise around a subject's centre, per dimension, relative to the centre's own


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def free_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    return int(fields["MemAvailable"].split()[0]) * 1024


def around(centres: np.ndarray, owners: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors float32 [n, DIM] near ``centres[owners]``."""
    noise = rng.standard_normal((len(owners), DIM), dtype=np.float32)
    vectors = centres[owners] + SPREAD * noise / np.sqrt(DIM)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def latency_ms(fn, queries: np.ndarray) -> tuple[float, float]:
    times = []
    for query in queries:
        started = time.perf_counter()
        fn(query)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times)), 1000 * float(np.percentile(times, 99))


def side_by_side_ms(fn, queries, base_fn, base_queries) -> tuple[tuple, tuple]:
    """``latency_ms`` of ``fn`` and of ``base_fn``, calls alternating, so both see the same
    moment of this machine (its speed drifts by 10–20 % from minute to minute)."""
    times, base_times = [], []
    for query, base_query in zip(queries, base_queries, strict=True):
        for call, arg, into in ((base_fn, base_query, base_times), (fn, query, times)):
            started = time.perf_counter()
            call(arg)
            into.append(time.perf_counter() - started)
    summary = lambda t: (1000 * float(np.median(t)), 1000 * float(np.percentile(t, 99)))  # noqa: E731
    return summary(times), summary(base_times)


def removal_ms(index: GalleryIndex, seed: int) -> tuple[float, float, int]:
    """(median ms of removing one sample, ms of the removal that compacted, removals until it):
    random samples removed one at a time until the tombstones are compacted."""
    times = []
    for sample in np.random.default_rng(seed).permutation(len(index)):
        held = index.held
        started = time.perf_counter()
        index.remove([int(sample)])
        times.append(time.perf_counter() - started)
        if index.held < held:
            break
    return 1000 * float(np.median(times[:-1])), 1000 * times[-1], len(times)


def agreement(index: GalleryIndex, queries: np.ndarray) -> float:
    same = sum(
        index.search(q, 1)[0].subject_id == index.search(q, 1, exact=True)[0].subject_id
        for q in queries
    )
    return same / len(queries)


CHUNK = 100_000


def chunks(size: int, per_subject: int):
    """The synthetic gallery, ``CHUNK`` samples at a time: (ids, subject names, vectors)."""
    centres = centres_of(size, per_subject, np.random.default_rng(size))
    for first in range(0, size, CHUNK):
        ids = np.arange(first, min(size, first + CHUNK))
        owners = ids % len(centres)
        vectors = around(centres, owners, np.random.default_rng([size, first]))
        yield ids, [f"s{o}" for o in owners], vectors


def centres_of(size: int, per_subject: int, rng: np.random.Generator) -> np.ndarray:
    """One unit centre per subject, float32 [subjects, DIM]."""
    centres = rng.standard_normal((max(1, size // per_subject), DIM), dtype=np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def build(size: int, per_subject: int, kept: Path) -> tuple[GalleryIndex, float, float]:
    """(index, build s, resident bytes per sample): the gallery built as a start builds it."""
    gc.collect()
    before = rss_bytes()
    ids = np.arange(size)
    names: list[str] = []
    vectors = np.empty((size, DIM), np.float32)  # filled in place: one copy of the vectors
    for part_ids, part_names, part_vectors in chunks(size, per_subject):
        vectors[part_ids] = part_vectors
        names += part_names
    started = time.perf_counter()
    index = GalleryIndex(DIM, "bench", "cpu", IndexPolicy("auto"), kept)
    index.add(ids, names, vectors)
    seconds = time.perf_counter() - started
    del vectors
    gc.collect()
    return index, seconds, (rss_bytes() - before) / size


def synthetic(args, engine: EmbeddingEngine, clip: np.ndarray) -> None:
    print(
        "\n| samples | index | lists | build s (start) | build s (restart, kept centroids) "
        "| bytes per sample | identify p50 / p99 ms, exact | approximate | "
        f"{args.sizes[0]:,} samples alongside | ratio | top-1 agreement | "
        "remove one sample ms | compaction ms (every n removals) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    embed = lambda: engine.embed(clip[None])  # noqa: E731
    smallest = None  # (index, queries) of the first size: measured beside every other size
    for size in args.sizes:
        # the vectors, the index and the queries' bookkeeping at once: 1,000,000 samples
        # peaked at 18 GB resident here
        needed = 2.3 * size * DIM * 4
        if needed > free_bytes():
            print(
                f"| {size:,} | not measured: needs about {needed / 2**30:.0f} GiB, "
                f"{free_bytes() / 2**30:.0f} GiB available | | | | | | | | | | | |"
            )
            continue
        with tempfile.TemporaryDirectory() as folder:
            index, build_s, per_sample = build(size, args.per_subject, Path(folder))
            built = f"{build_s:.1f}"
            restart = "–"
            if index.kind == "approximate":
                restart = "(not measured: memory)"
                if needed < free_bytes():
                    restarted, restart_s, _ = build(size, args.per_subject, Path(folder))
                    restart = f"{restart_s:.1f}"
                    del restarted
                    gc.collect()
        rng = np.random.default_rng(size + 1)
        centres = centres_of(size, args.per_subject, np.random.default_rng(size))
        queries = around(centres, rng.integers(len(centres), size=args.queries), rng)

        def identify(query, exact=False, index=index):
            part_normalise(embed())
            return index.search(query, 5, exact=exact)

        smallest = smallest or (index, queries)
        exact = latency_ms(lambda q: identify(q, True), queries)
        approximate, alongside = side_by_side_ms(
            identify, queries, lambda q, base=smallest[0]: identify(q, index=base), smallest[1]
        )
        agree = agreement(index, queries) if index.kind == "approximate" else 1.0
        if index is smallest[0]:  # measured beside every other size: keep it whole
            removal = "–", "–"
        else:
            one_ms, compaction_ms, count = removal_ms(index, size + 2)
            removal = f"{one_ms:.3f}", f"{compaction_ms:.1f} (n = {count:,})"
        print(
            f"| {size:,} | {index.kind} | {index.lists} | {built} | {restart} | "
            f"{per_sample:,.0f} | {exact[0]:.1f} / {exact[1]:.1f} | "
            f"{approximate[0]:.2f} / {approximate[1]:.1f} | "
            f"{alongside[0]:.2f} / {alongside[1]:.1f} | ×{approximate[0] / alongside[0]:.2f} | "
            f"{100 * agree:.1f} % | {removal[0]} | {removal[1]} |"
        )
        del index
        gc.collect()


def real(args, engine: EmbeddingEngine) -> None:
    from training.data.cache import SilhouetteCache
    from training.data.subjects import parse_subjects

    subjects = parse_subjects(args.real_subjects)
    gallery_conditions = ["nm-01", "nm-02", "nm-03", "nm-04", "bg-01", "cl-01"]
    probe_conditions = ["nm-05", "nm-06", "bg-02", "cl-02"]
    embedded = {}
    for name, conditions in (("gallery", gallery_conditions), ("probes", probe_conditions)):
        cache = SilhouetteCache.load(args.data, subjects, conditions, 5)
        clips = [cache.sequence(i) for i in range(len(cache))]
        embedded[name] = (part_normalise(engine.embed_many(clips)), list(cache.subjects))
    vectors, names = embedded["gallery"]
    queries, truth = embedded["probes"]
    index = GalleryIndex(vectors.shape[1], "real", "cpu", IndexPolicy("approximate"))
    index.add(np.arange(len(vectors)), names, vectors)
    agree = agreement(index, queries)
    pairs = list(zip(queries, truth, strict=True))
    exact_right = np.mean([index.search(q, 1, exact=True)[0].subject_id == t for q, t in pairs])
    approx_right = np.mean([index.search(q, 1)[0].subject_id == t for q, t in pairs])
    print(
        f"\nreal CASIA-B embeddings ({engine.version}): gallery {len(vectors):,} samples of "
        f"{index.subjects} subjects, {len(queries):,} probes, approximate index of {index.lists} "
        f"lists probing {index.policy.nprobe}: top-1 agreement with exact {100 * agree:.2f} %; "
        f"rank-1 (probe's subject first) exact {100 * exact_right:.2f} %, approximate "
        f"{100 * approx_right:.2f} %"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,10000,100000,1000000")
    parser.add_argument("--per-subject", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", type=Path, default=Path("/tmp/casia-b"))
    parser.add_argument("--real-subjects", default="001-074")
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    engine = EmbeddingEngine(default_model_path("auto"), device="cpu")  # what the service serves
    clip = np.zeros((args.frames, 64, 44), np.uint8)
    clip[:, 8:56, 16:28] = 255
    print(
        f"identify = the served default ({engine.version}) embedding one {args.frames}-frame "
        f"clip, then the search (top 5 subjects); {args.queries} queries; {IndexPolicy()}"
    )
    synthetic(args, engine, clip)
    if args.data.is_dir():
        real(args, engine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
