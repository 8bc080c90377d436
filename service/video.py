"""Videos of masks, decoded where a hostile file cannot hurt the service.

A video's frames are only known once a decoder has allocated them, and a codec such as MJPEG can
announce 16000×16000 frames in a few bytes. So videos are decoded by OpenCV (FFmpeg) in a child
process (``python -m service.video``) whose address space, CPU time and wall time are capped;
inside it, the container's frame size is checked against the upload's budget before any frame
is read, and every frame is charged as it arrives. The child sends the grey frames back as a
``.npy`` array (read without pickle); a child that runs out of memory or time is a 413.
Costs a process start (about 0.2 s) per video upload; other formats decode in process.

Containers are recognised by their first bytes; anything else is refused without a decoder.
"""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np

from service.clip_limits import (
    ClipError,
    ClipLimits,
    ClipTooLargeError,
    CorruptClipError,
    FrameBudget,
    UnsupportedFormatError,
    refusal_of,
    refuse,
)

BASE_ADDRESS_SPACE = 448 * 1024 * 1024  # python + numpy + OpenCV/FFmpeg, mapped but idle
TIMEOUT_S = 60


def is_video(data: bytes) -> bool:
    """AVI, MP4/MOV (ISO BMFF), Matroska/WebM, MPEG-PS/TS, Ogg, FLV — by their first bytes."""
    return (
        (data[:4] == b"RIFF" and data[8:12] == b"AVI ")
        or data[4:8] == b"ftyp"
        or data[:4] == b"\x1a\x45\xdf\xa3"
        or data[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")
        or (len(data) > 376 and data[0] == data[188] == data[376] == 0x47)
        or data[:4] == b"OggS"
        or data[:3] == b"FLV"
    )


def address_space_for(limits: ClipLimits) -> int:
    """The child's memory cap: the idle process, the decoded frames (grey, then stacked), and a
    few colour frames in flight inside the decoder."""
    return BASE_ADDRESS_SPACE + 2 * limits.max_total_pixels + 16 * limits.max_frame_pixels


def decode_video(data: bytes, limits: ClipLimits) -> list[np.ndarray]:
    """The frames of a video as 2-D uint8 arrays, decoded in a capped child process."""
    command = [sys.executable, "-m", "service.video"]
    command += [str(v) for v in (limits.max_frames, limits.max_frame_pixels)]
    command += [str(limits.max_total_pixels), str(address_space_for(limits))]
    command.append(str(len(data) + (1 << 20)))  # the most the child may write: the upload
    # nothing of the service's environment (keys, database URL) reaches the decoder
    env = {name: os.environ[name] for name in ("PATH", "PYTHONPATH") if name in os.environ}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", LC_ALL="C")
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise ClipTooLargeError(f"the video took over {TIMEOUT_S} s to decode") from None
    if refusal := refusal_of(done.returncode, done.stderr):
        raise refusal
    if done.returncode != 0:
        if b"MemoryError" in done.stderr or b"Insufficient memory" in done.stderr:
            raise ClipTooLargeError("the video needs more memory to decode than a clip may use")
        raise CorruptClipError("the video could not be decoded")
    frames = np.load(io.BytesIO(done.stdout), allow_pickle=False)
    return list(frames)


def _decode_here(path: str, budget: FrameBudget) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise UnsupportedFormatError("not a video OpenCV can open")
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width > 0 and height > 0:  # the container's word, before a frame is decoded
            FrameBudget(budget.limits).charge(height, width)
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            budget.charge(frame.shape[0], frame.shape[1])
            frames.append(frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    finally:
        capture.release()
    if not frames:
        raise UnsupportedFormatError("the video holds no frame OpenCV can decode")
    if len({f.shape for f in frames}) > 1:
        raise CorruptClipError("the video's frames change size")
    return np.stack(frames)


def main(argv: list[str]) -> int:
    max_frames, max_frame_pixels, max_total_pixels, address_space, file_size = map(int, argv)
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CPU, (TIMEOUT_S, TIMEOUT_S))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    limits = ClipLimits(
        max_frames=max_frames,
        max_frame_pixels=max_frame_pixels,
        max_total_pixels=max_total_pixels,
    )
    data = sys.stdin.buffer.read()
    with tempfile.NamedTemporaryFile(suffix=".video") as handle:
        handle.write(data)
        handle.flush()
        try:
            frames = _decode_here(handle.name, FrameBudget(limits))
        except ClipError as error:
            return refuse(error)
    out = io.BytesIO()
    np.save(out, frames, allow_pickle=False)
    sys.stdout.buffer.write(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
