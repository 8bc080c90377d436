"""Uploaded silhouette clips → raw masks ``uint8 [T, H, W]``, safely.

Formats, told apart by their first bytes (never by the file name):
- a zip of PNG/JPEG/BMP frames, ordered by name;
- ``.npy`` / ``.npz`` arrays ``(frames, H, W)`` of uint8 or bool, loaded with
  ``allow_pickle=False`` (nothing a client sends is ever unpickled);
- multi-frame GIF or TIFF, or a single image (a one-frame clip);
- a video of masks (AVI, MP4/MOV, Matroska/WebM, MPEG, Ogg, FLV), decoded by OpenCV (FFmpeg)
  in a child process with a memory cap (``service.video``).

One budget per upload (``FrameBudget``: frames, pixels per frame, pixels in all) is charged by
every container before each frame is decoded: declared archive sizes and compression ratios,
image dimensions from headers, array shapes from ``.npy`` headers, video dimensions from the
container. The errors below carry their HTTP status and code (``service.errors``).
"""

from __future__ import annotations

import io
import itertools
import math
import zipfile
import zlib
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.clip_limits import (
    ClipError,
    ClipLimits,
    ClipTooLargeError,
    CorruptClipError,
    FrameBudget,
    UnsafeArchiveError,
    UnsupportedFormatError,
)
from service.video import decode_video, is_video

__all__ = [  # the limits and errors of an upload live in service.clip_limits, used here too
    "ClipError",
    "ClipLimits",
    "ClipTooLargeError",
    "CorruptClipError",
    "FrameBudget",
    "UnsafeArchiveError",
    "UnsupportedFormatError",
    "decode_clip",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
FRAME_FORMATS = ("PNG", "JPEG", "BMP")  # what a zip member may be (sniffed, not by its name)


def _image_frames(data: bytes, budget: FrameBudget, one_frame: bool = False) -> list[np.ndarray]:
    """Every frame of an image file (GIF/TIFF may hold many), as 2-D uint8 arrays.

    Frames are visited in order and each is charged to ``budget`` from its header before it is
    decoded, so a file of many pages costs at most the budget (its page count is never asked
    for: that walks the whole file). ``one_frame``: a zip member, which must be one PNG, JPEG or
    BMP frame whatever its name says.
    """
    try:
        image = Image.open(io.BytesIO(data))
        if one_frame and (image.format not in FRAME_FORMATS or getattr(image, "n_frames", 1) > 1):
            raise UnsupportedFormatError(
                f"zip members must be single PNG, JPEG or BMP frames; found {image.format}"
                + (" with several frames" if image.format in FRAME_FORMATS else "")
            )
        frames = []
        for index in itertools.count():
            if index:
                try:
                    image.seek(index)
                except EOFError:
                    break
            width, height = image.size
            budget.charge(height, width)
            frames.append(np.asarray(image.convert("L"), dtype=np.uint8))
            if one_frame:
                break
        return frames
    except ClipError:
        raise
    except Image.DecompressionBombError as error:
        raise ClipTooLargeError(f"image too large to decode: {error}") from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise CorruptClipError(f"unreadable image: {error}") from error


ZIP_END = b"PK\x05\x06"  # end of central directory record
ZIP_ENTRY_SLACK = 16  # directories and stray files beside the frames
ZIP_STORED_OR_DEFLATED = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def _check_zip_directory(data: bytes, limits: ClipLimits) -> None:
    """From the end-of-central-directory record, before Python parses a single entry: an
    archive of more entries than a clip has frames (or a zip64 one) is refused."""
    end = data.rfind(ZIP_END, max(0, len(data) - 65_536 - 22))
    if end < 0 or len(data) < end + 22:
        raise CorruptClipError("unreadable zip archive: no end of central directory")
    entries = int.from_bytes(data[end + 10 : end + 12], "little")
    if entries == 0xFFFF or entries > limits.max_frames + ZIP_ENTRY_SLACK:
        raise ClipTooLargeError(
            f"the zip holds {'over 65,534' if entries == 0xFFFF else entries} entries; "
            f"a clip has at most {limits.max_frames} frames"
        )


def _safe_member_names(archive: zipfile.ZipFile, limits: ClipLimits) -> list[zipfile.ZipInfo]:
    members = [m for m in archive.infolist() if not m.is_dir()]
    total = 0
    for member in members:
        path = PurePosixPath(member.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or ":" in member.filename:
            raise UnsafeArchiveError(f"archive member {member.filename!r} has an unsafe path")
        if member.flag_bits & 0x1:
            raise UnsupportedFormatError(f"archive member {member.filename!r} is encrypted")
        if member.compress_type not in ZIP_STORED_OR_DEFLATED:
            raise UnsupportedFormatError(
                f"archive member {member.filename!r} is compressed with method "
                f"{member.compress_type}; only stored and deflated members are read"
            )
        if member.file_size > limits.max_compression_ratio * max(member.compress_size, 1):
            raise UnsafeArchiveError(f"archive member {member.filename!r} expands suspiciously")
        total += member.file_size
    if total > limits.max_total_pixels:
        raise ClipTooLargeError(f"archive expands to {total} bytes; too large")
    return members


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    try:
        with archive.open(member) as handle:
            data = handle.read(member.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as error:
        raise CorruptClipError(
            f"archive member {member.filename!r} is unreadable: {error}"
        ) from None
    if len(data) > member.file_size:  # the header lied about the size
        raise UnsafeArchiveError(f"archive member {member.filename!r} is larger than declared")
    return data


def _npy_array(data: bytes, budget: FrameBudget) -> np.ndarray:
    """The array of an .npy file, its header read once (the budget is charged before any
    array is made) and its data taken as it is; never unpickled."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(stream)
    except Exception:  # numpy's parser raises ValueError, SyntaxError, tokenize.TokenError, …
        # its messages quote Python's parser (and memory addresses): say it in our words
        raise CorruptClipError(
            "unreadable .npy array: its header is not the dictionary of descr, fortran_order "
            "and shape that numpy writes"
        ) from None
    if dtype not in (np.dtype(np.uint8), np.dtype(np.bool_)):
        raise UnsupportedFormatError(f"arrays must be uint8 or bool; got {dtype}")
    if len(shape) != 3:
        raise UnsupportedFormatError(f"arrays must be (frames, H, W); got shape {shape}")
    budget.charge(shape[1], shape[2], shape[0])
    count, start = math.prod(shape), stream.tell()
    if len(data) - start < count:  # one byte an element: uint8 or bool
        raise CorruptClipError(
            f"unreadable .npy array: {len(data) - start} data bytes for shape {shape}"
        )
    flat = np.frombuffer(data, np.uint8, count, offset=start)
    array = np.ascontiguousarray(flat.reshape(shape, order="F" if fortran_order else "C"))
    return (array != 0) * np.uint8(255) if dtype == np.bool_ else array


def _from_zip(data: bytes, budget: FrameBudget) -> np.ndarray | list[np.ndarray]:
    limits = budget.limits
    _check_zip_directory(data, limits)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as error:
        raise CorruptClipError(f"unreadable zip archive: {error}") from error
    with archive:
        members = _safe_member_names(archive, limits)
        arrays = [m for m in members if m.filename.endswith(".npy")]
        if arrays:  # an .npz
            if len(arrays) != 1 or len(members) != 1:
                raise UnsupportedFormatError(".npz clips must hold exactly one array")
            return _npy_array(_read_member(archive, arrays[0]), budget)
        images = sorted(
            (m for m in members if m.filename.lower().endswith(IMAGE_SUFFIXES)),
            key=lambda m: m.filename,
        )
        if not images:
            raise UnsupportedFormatError("the zip holds no PNG/JPEG/BMP frames")
        if len(images) > limits.max_frames:
            raise ClipTooLargeError(f"{len(images)} frames; at most {limits.max_frames}")
        return [
            frame
            for member in images
            for frame in _image_frames(_read_member(archive, member), budget, one_frame=True)
        ]


DEFAULT_LIMITS = ClipLimits()


def decode_clip(data: bytes, limits: ClipLimits = DEFAULT_LIMITS) -> list[np.ndarray] | np.ndarray:
    """The upload's frames, in order: a uint8 [T, H, W] array or a list of uint8 [H, W] frames
    (values as sent: 0/255, or 0/1 which normalisation scales)."""
    if not data:
        raise CorruptClipError("the upload is empty")
    if len(data) > limits.max_bytes:
        raise ClipTooLargeError(f"the upload is {len(data)} bytes; at most {limits.max_bytes}")
    budget = FrameBudget(limits)
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _from_zip(data, budget)
    if data.startswith(b"\x93NUMPY"):
        return _npy_array(data, budget)
    if (
        data[:6] in (b"GIF87a", b"GIF89a")
        or data[:4] in (b"II*\x00", b"MM\x00*")
        or data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"BM"))
    ):
        return _image_frames(data, budget)
    if data.startswith((b"\x80", b"(dp", b"c__builtin__", b"cnumpy")):
        raise UnsupportedFormatError("pickles are never accepted; send .npy/.npz arrays")
    if is_video(data):
        return decode_video(data, limits)
    raise UnsupportedFormatError(
        "not a recognised clip: send a zip of frames, .npy/.npz, GIF/TIFF or a video "
        "(AVI, MP4/MOV, Matroska/WebM, MPEG, Ogg, FLV)"
    )
