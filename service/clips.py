"""Uploaded silhouette clips → raw masks ``uint8 [T, H, W]``, safely.

Formats, told apart by their first bytes (never by the file name):
- a zip of PNG/JPEG/BMP frames, ordered by name;
- ``.npy`` / ``.npz`` arrays ``(frames, H, W)`` of uint8 or bool, loaded with
  ``allow_pickle=False`` (nothing a client sends is ever unpickled);
- multi-frame GIF or TIFF, or a single image (a one-frame clip);
- a video of masks, decoded by OpenCV (FFmpeg).

Every path checks sizes before it decodes: declared archive sizes and compression ratios, image
dimensions from headers, array shapes from ``.npy`` headers, frame counts as frames arrive. The
errors below carry what went wrong; the API layer turns them into 4xx answers.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class ClipLimits:
    max_bytes: int = 64 * 1024 * 1024  # the upload itself
    max_frames: int = 1000
    max_frame_pixels: int = 2048 * 2048
    max_total_pixels: int = 300 * 1024 * 1024  # all frames together, decoded
    max_compression_ratio: int = 200  # per archive member; silhouettes compress well, bombs more


class ClipError(ValueError):
    """An upload that cannot be turned into a clip; ``reason`` is a short machine-readable tag."""

    reason = "invalid_clip"


class UnsupportedFormatError(ClipError):
    reason = "unsupported_format"


class ClipTooLargeError(ClipError):
    reason = "clip_too_large"


class CorruptClipError(ClipError):
    reason = "corrupt_clip"


class UnsafeArchiveError(ClipError):
    reason = "unsafe_archive"


def _check_frames(count: int, height: int, width: int, limits: ClipLimits) -> None:
    if count > limits.max_frames:
        raise ClipTooLargeError(f"{count} frames; at most {limits.max_frames} are accepted")
    if height * width > limits.max_frame_pixels:
        raise ClipTooLargeError(
            f"frames of {height}×{width} pixels; at most {limits.max_frame_pixels} per frame"
        )
    if count * height * width > limits.max_total_pixels:
        raise ClipTooLargeError(f"{count} frames of {height}×{width} pixels is too much to decode")


def _image_frames(data: bytes, limits: ClipLimits) -> list[np.ndarray]:
    """Every frame of an image file (GIF/TIFF may hold many), as 2-D uint8 arrays."""
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        count = getattr(image, "n_frames", 1)
        _check_frames(count, height, width, limits)
        frames = []
        for index in range(count):
            image.seek(index)
            frames.append(np.asarray(image.convert("L"), dtype=np.uint8))
        return frames
    except ClipError:
        raise
    except Image.DecompressionBombError as error:
        raise ClipTooLargeError(f"image too large to decode: {error}") from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise CorruptClipError(f"unreadable image: {error}") from error


def _safe_member_names(archive: zipfile.ZipFile, limits: ClipLimits) -> list[zipfile.ZipInfo]:
    members = [m for m in archive.infolist() if not m.is_dir()]
    total = 0
    for member in members:
        path = PurePosixPath(member.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or ":" in member.filename:
            raise UnsafeArchiveError(f"archive member {member.filename!r} has an unsafe path")
        if member.file_size > limits.max_compression_ratio * max(member.compress_size, 1):
            raise UnsafeArchiveError(f"archive member {member.filename!r} expands suspiciously")
        total += member.file_size
    if total > limits.max_total_pixels:
        raise ClipTooLargeError(f"archive expands to {total} bytes; too large")
    return members


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    with archive.open(member) as handle:
        data = handle.read(member.file_size + 1)
    if len(data) > member.file_size:  # the header lied about the size
        raise UnsafeArchiveError(f"archive member {member.filename!r} is larger than declared")
    return data


def _npy_array(data: bytes, limits: ClipLimits) -> np.ndarray:
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(stream)
    except ValueError as error:
        raise CorruptClipError(f"unreadable .npy array: {error}") from error
    if dtype not in (np.dtype(np.uint8), np.dtype(np.bool_)):
        raise UnsupportedFormatError(f"arrays must be uint8 or bool; got {dtype}")
    if len(shape) != 3:
        raise UnsupportedFormatError(f"arrays must be (frames, H, W); got shape {shape}")
    _check_frames(*shape, limits)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        raise CorruptClipError(f"unreadable .npy array: {error}") from error
    return array.astype(np.uint8) * 255 if array.dtype == np.bool_ else array


def _from_zip(data: bytes, limits: ClipLimits) -> np.ndarray | list[np.ndarray]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise CorruptClipError(f"unreadable zip archive: {error}") from error
    with archive:
        members = _safe_member_names(archive, limits)
        arrays = [m for m in members if m.filename.endswith(".npy")]
        if arrays:  # an .npz
            if len(arrays) != 1 or len(members) != 1:
                raise UnsupportedFormatError(".npz clips must hold exactly one array")
            return _npy_array(_read_member(archive, arrays[0]), limits)
        images = sorted(
            (m for m in members if m.filename.lower().endswith(IMAGE_SUFFIXES)),
            key=lambda m: m.filename,
        )
        if not images:
            raise UnsupportedFormatError("the zip holds no PNG/JPEG/BMP frames")
        if len(images) > limits.max_frames:
            raise ClipTooLargeError(f"{len(images)} frames; at most {limits.max_frames}")
        frames = []
        for member in images:
            decoded = _image_frames(_read_member(archive, member), limits)
            frames.extend(decoded)
        return frames


def _from_video(data: bytes, limits: ClipLimits) -> list[np.ndarray]:
    with tempfile.NamedTemporaryFile(suffix=".video") as handle:
        handle.write(data)
        handle.flush()
        capture = cv2.VideoCapture(handle.name)
        try:
            frames = []
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                _check_frames(len(frames) + 1, frame.shape[0], frame.shape[1], limits)
                frames.append(frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        finally:
            capture.release()
    if not frames:
        raise UnsupportedFormatError(
            "not a recognised clip: send a zip of frames, .npy/.npz, GIF/TIFF or a video"
        )
    return frames


DEFAULT_LIMITS = ClipLimits()


def decode_clip(data: bytes, limits: ClipLimits = DEFAULT_LIMITS) -> list[np.ndarray] | np.ndarray:
    """The upload's frames, in order: a uint8 [T, H, W] array or a list of uint8 [H, W] frames
    (values as sent: 0/255, or 0/1 which normalisation scales)."""
    if not data:
        raise CorruptClipError("the upload is empty")
    if len(data) > limits.max_bytes:
        raise ClipTooLargeError(f"the upload is {len(data)} bytes; at most {limits.max_bytes}")
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _from_zip(data, limits)
    if data.startswith(b"\x93NUMPY"):
        return _npy_array(data, limits)
    if (
        data[:6] in (b"GIF87a", b"GIF89a")
        or data[:4] in (b"II*\x00", b"MM\x00*")
        or data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"BM"))
    ):
        return _image_frames(data, limits)
    if data.startswith((b"\x80", b"(dp", b"c__builtin__", b"cnumpy")):
        raise UnsupportedFormatError("pickles are never accepted; send .npy/.npz arrays")
    return _from_video(data, limits)
