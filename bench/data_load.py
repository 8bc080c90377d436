"""How long loading the CASIA-B training partition (subjects 001–074) into memory takes, and the
memory it uses.

    python bench/data_load.py [--tree /tmp/casia-b] [--subjects LT-train] [--workers 4]

Without --tree it unpacks ../shared/casia-b into a temporary folder first (timed separately).
Prints wall time, sequences and frames per second, the cache's size, and the process's resident
memory before, after and at its peak.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.data.cache import SilhouetteCache  # noqa: E402
from training.data.subjects import parse_subjects  # noqa: E402


def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=None, help="unpacked pkl tree")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "casia-b")
    parser.add_argument("--subjects", default="LT-train")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    scratch = None
    tree = args.tree
    if tree is None:
        if not (args.shared / "unpack.sh").exists():
            print(f"no --tree given and no CASIA-B at {args.shared}", file=sys.stderr)
            return 2
        scratch = Path(tempfile.mkdtemp(prefix="casia-b-"))
        start = time.perf_counter()
        subprocess.run(["bash", str(args.shared / "unpack.sh"), str(scratch)], check=True)
        print(f"unpack        {time.perf_counter() - start:7.1f} s")
        tree = scratch

    try:
        subjects = parse_subjects(args.subjects)
        rss_before = memory_mb("VmRSS")
        start = time.perf_counter()
        cache = SilhouetteCache.load(tree, subjects, workers=args.workers)
        seconds = time.perf_counter() - start
        rss_after = memory_mb("VmRSS")
        frames = len(cache.frames)
        print(f"subjects      {len(set(cache.subjects))} ({args.subjects})")
        print(f"sequences     {len(cache)}  (skipped {len(cache.skipped)})")
        print(f"frames        {frames}  uint8 [N, 64, 44]")
        print(
            f"load time     {seconds:7.2f} s  ({len(cache) / seconds:,.0f} seq/s, "
            f"{frames / seconds:,.0f} frames/s, {args.workers} reader threads)"
        )
        print(f"cache size    {cache.nbytes / 1e6:7.0f} MB")
        print(f"RSS before    {rss_before:7.0f} MB")
        print(f"RSS after     {rss_after:7.0f} MB  (+{rss_after - rss_before:.0f} MB)")
        print(f"RSS peak      {memory_mb('VmHWM'):7.0f} MB")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
