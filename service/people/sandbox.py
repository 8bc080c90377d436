"""The video pipeline in a capped child process, for uploads.

A hostile video can announce huge frames or make a decoder spin; the models allocate what the
frames ask. So the service never runs them in its own process: ``find_people_sandboxed`` starts
``python -m service.people.sandbox`` with the upload on stdin and a scratch folder, under
``VideoLimits``' address space, CPU time, wall time and file size, with none of the service's
environment (keys, database URL). The child checks the container's frame size, count and
duration before it decodes a frame (a long 4K video is refused in well under a second), charges
every frame, and writes ``tracks.json`` and the clips to the folder, which the parent reads back
without pickle and checks. A child that runs out of memory or time is a 413, like a mask video's
decoder (``service.video``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from service.clip_limits import (
    ClipError,
    ClipTooLargeError,
    CorruptClipError,
    refusal_of,
    refuse,
)
from service.people.assets import models_dir
from service.people.limits import VideoError, VideoLimits
from service.people.tracks_file import TrackFiles, read_tracks

MAX_OUTPUT_FILE = 64 * 1024 * 1024  # a track's clip: 1,000 frames are 2.8 MB


def find_people_sandboxed(
    data: bytes, limits: VideoLimits, turns: int | None = None
) -> tuple[TrackFiles, dict[str, float]]:
    """The tracks of an uploaded video, and the seconds each stage took in the child."""
    with tempfile.TemporaryDirectory(prefix="gaitlab-video-") as folder:
        command = [sys.executable, "-m", "service.people.sandbox", folder]
        command += [json.dumps(dataclasses.asdict(limits)), str(turns), str(models_dir())]
        env = {name: os.environ[name] for name in ("PATH", "PYTHONPATH") if name in os.environ}
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", LC_ALL="C")
        try:
            done = subprocess.run(
                command, input=data, capture_output=True, timeout=limits.wall_seconds, env=env
            )
        except subprocess.TimeoutExpired:
            raise ClipTooLargeError(
                f"the video took over {limits.wall_seconds} s to process"
            ) from None
        if refusal := refusal_of(done.returncode, done.stderr, (VideoError,)):
            raise refusal
        if done.returncode != 0:
            if b"MemoryError" in done.stderr or b"Insufficient memory" in done.stderr:
                raise ClipTooLargeError("the video needs more memory than a video may use")
            if done.returncode in (-9, -24, 137, 152):  # SIGKILL / SIGXCPU: the CPU cap
                raise ClipTooLargeError("the video needs more CPU time than a video may use")
            raise CorruptClipError("the video could not be processed")
        files = read_tracks(Path(folder), limits.max_frames)
        return files, json.loads(done.stdout or b"{}")


def main(argv: list[str]) -> int:
    folder, limits_json, turns, models = argv
    limits = VideoLimits(**json.loads(limits_json))
    memory = limits.memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    os.environ["GAITLAB_PEOPLE_MODELS"] = models
    from service.people.load import load_models
    from service.people.pipeline import Options, find_people
    from service.people.source import VideoSource
    from service.people.tracks_file import write_tracks

    out = Path(folder)
    video = out / "upload.video"
    data = sys.stdin.buffer.read()
    largest = max(MAX_OUTPUT_FILE, len(data) + 4096)  # the upload itself, or a track's clip
    resource.setrlimit(resource.RLIMIT_FSIZE, (largest, largest))
    video.write_bytes(data)
    del data
    try:
        try:  # first: what is left of the cap is the video's
            detector, segmenter = load_models()
        except (MemoryError, RuntimeError, OSError, ImportError) as error:  # "failed to map"
            detail = f"the models need more memory than a video may use: {error}"
            raise ClipTooLargeError(detail) from None
        source = VideoSource(str(video), limits)
        options = Options(turns=None if turns == "None" else int(turns))
        people = find_people(source, detector, segmenter, source.info.fps, options)
        video.unlink()
        write_tracks(people, source.info.fps, out)
    except ClipError as error:
        return refuse(error)
    print(json.dumps(people.timings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
