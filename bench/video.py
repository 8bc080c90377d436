"""Speed of the video pipeline: per stage and end to end, frames per second at 720p, for one
person and for two, on real phone clips (../shared/videos).

    python bench/video.py [--videos ../shared/videos] [--repeats 3] [--threads 1]

Each case runs as the service does (decode and detect in a thread of their own, overlapping
the rest) and all in one thread. Stages (``service.people.pipeline``): decode (OpenCV/FFmpeg,
and BGR → RGB), detect (the person detector on three squares every 5th frame, and on eight
finer ones every 15th), segment (the landmark model on each person's square), track
(ByteTrack), normalise (the silhouette normaliser, boxes, thumbnail), and embed (the shipped
default model, int8 on a CPU, once per kept track). Milliseconds per frame are the median of
--repeats runs (with two threads, stages overlap: they add up to more than the wall time); end
to end is frames / (pipeline + embed); CPU ms/frame is the process's CPU time (all its threads)
per frame, which other work on the machine changes less. Model loading is printed apart.
Pause other work on the machine while it runs.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.default import default_model_path  # noqa: E402
from models.engine import EngineOptions  # noqa: E402
from service.people.limits import VideoLimits  # noqa: E402
from service.people.load import load_models  # noqa: E402
from service.people.pipeline import STAGES, Options, find_people  # noqa: E402
from service.people.source import VideoSource  # noqa: E402

# (label, file, first frame, last frame + 1): 720×1280 portrait phone clips, H.264
CASES = [
    ("1 person", "hall-grey-hoodie-side-a.mp4", 0, 64),  # A walks across the hall
    ("2 people", "hall-two-walkers-side.mp4", 66, 102),  # C and B both in view
]


def frames_of(path: Path, start: int, stop: int):
    """The clip's frames [start, stop); those before ``start`` are decoded here, untimed."""
    source = VideoSource(str(path), VideoLimits())
    frames = iter(source)
    for _ in range(start):
        next(frames)
    return itertools.takewhile(lambda item: item[0] < stop, frames)


def run(models, engine, path: Path, start: int, stop: int, ahead: bool) -> dict[str, float]:
    frames = frames_of(path, start, stop)
    started, cpu = time.perf_counter(), time.process_time()
    people = find_people(frames, *models, 30.0, Options(ahead=ahead))
    pipeline = time.perf_counter() - started
    clock = time.perf_counter()
    for track in people.kept:
        engine.embed(track.clip()[None])
    embed = time.perf_counter() - clock
    cpu = time.process_time() - cpu
    count = people.frames
    per_frame = {stage: 1000 * people.timings[stage] / count for stage in STAGES}
    per_frame["embed"] = 1000 * embed / count
    per_frame["end to end fps"] = count / (pipeline + embed)
    per_frame["cpu"] = 1000 * cpu / count
    per_frame["frames"] = count
    per_frame["people"] = len(people.kept)
    return per_frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=REPO.parent / "shared" / "videos")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="OpenCV's threads")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    started = time.perf_counter()
    models = load_models()
    engine = EngineOptions("cpu").open(default_model_path("auto", on_cpu=True))
    print(
        f"models loaded in {time.perf_counter() - started:.2f} s; embedding with {engine.version}"
    )
    header = ["case", "frames", "people", *STAGES, "embed", "ms/frame", "fps", "CPU ms/frame"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for (label, name, start, stop), ahead in itertools.product(CASES, (True, False)):
        path = args.videos / name
        if not path.is_file():
            print(f"{label}: {path} not found (see ../shared/videos/README.md)")
            continue
        label = f"{label}, {'two threads' if ahead else 'one thread'}"
        runs = [run(models, engine, path, start, stop, ahead) for _ in range(args.repeats)]
        median = {key: float(np.median([r[key] for r in runs])) for key in runs[0]}
        stages = [f"{median[s]:.1f}" for s in (*STAGES, "embed")]
        total = 1000 / median["end to end fps"]
        row = [label, f"{median['frames']:.0f}", f"{median['people']:.0f}", *stages]
        row += [f"{total:.1f}", f"**{median['end to end fps']:.1f}**", f"{median['cpu']:.1f}"]
        print("| " + " | ".join(row) + " |")
    print(
        "stages in ms per frame (median of runs); fps: frames / (pipeline + embed); "
        "CPU: the process's CPU time per frame, all threads"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
