"""service.clips: every accepted format decodes to the frames sent; bad uploads say why."""

from __future__ import annotations

import io
import pickle
import zipfile
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from service.clips import (
    ClipLimits,
    ClipTooLargeError,
    CorruptClipError,
    UnsafeArchiveError,
    UnsupportedFormatError,
    decode_clip,
)


def masks(frames=6, height=80, width=60) -> np.ndarray:
    """Distinct binary frames: a bar that moves right one column per frame."""
    out = np.zeros((frames, height, width), np.uint8)
    for t in range(frames):
        out[t, 10:70, 10 + t : 30 + t] = 255
    return out


def as_zip(files: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def png(frame: np.ndarray) -> bytes:
    return cv2.imencode(".png", frame)[1].tobytes()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_zip_of_pngs_in_name_order():
    clip = masks()
    files = {f"frames/{t:03d}.png": png(clip[t]) for t in reversed(range(len(clip)))}
    np.testing.assert_array_equal(np.stack(decode_clip(as_zip(files))), clip)


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_])
def test_npy_and_npz(dtype):
    clip = masks().astype(dtype) if dtype is np.uint8 else masks() > 0
    np.testing.assert_array_equal(decode_clip(npy(clip)), masks())
    buffer = io.BytesIO()
    np.savez_compressed(buffer, clip=clip)
    np.testing.assert_array_equal(decode_clip(buffer.getvalue()), masks())


def test_npy_in_fortran_order_decodes_as_numpy_reads_it():
    clip = masks()
    upload = npy(np.asfortranarray(clip))
    assert np.load(io.BytesIO(upload)).flags.f_contiguous  # the file really is column-major
    decoded = decode_clip(upload)
    np.testing.assert_array_equal(decoded, clip)
    assert decoded.flags.c_contiguous
    assert decoded.flags.writeable


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_multi_frame_images(fmt):
    clip = masks()
    buffer = io.BytesIO()
    images = [Image.fromarray(frame) for frame in clip]
    images[0].save(buffer, format=fmt, save_all=True, append_images=images[1:])
    np.testing.assert_array_equal(np.stack(decode_clip(buffer.getvalue())), clip)


def test_video_of_masks(tmp_path):
    clip = masks(frames=8, height=120, width=96)
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 120), isColor=False)
    for frame in clip:
        writer.write(frame)
    writer.release()
    decoded = np.stack(decode_clip((tmp_path / "clip.avi").read_bytes()))
    assert decoded.shape == clip.shape
    assert np.mean((decoded > 127) == (clip > 127)) > 0.99  # lossy codec, same masks


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", CorruptClipError, "empty"),
        (b"hello, not a clip at all", UnsupportedFormatError, "not a recognised clip"),
        (pickle.dumps(np.zeros((2, 64, 44), np.uint8)), UnsupportedFormatError, "pickles"),
        (npy(np.zeros((2, 64, 44), np.float32)), UnsupportedFormatError, "uint8 or bool"),
        (npy(np.zeros((64, 44), np.uint8)), UnsupportedFormatError, "(frames, H, W)"),
        (npy(np.zeros((3, 64, 44), np.uint8))[:-50], CorruptClipError, "unreadable"),
        (b"PK\x03\x04 broken zip", CorruptClipError, "zip"),
        (as_zip({"readme.txt": b"hi"}), UnsupportedFormatError, "no PNG"),
        (as_zip({"0.png": b"\x89PNG not really"}), CorruptClipError, "unreadable image"),
        (as_zip({"../../etc/passwd.png": png(masks()[0])}), UnsafeArchiveError, "unsafe path"),
        (as_zip({"/abs.png": png(masks()[0])}), UnsafeArchiveError, "unsafe path"),
    ],
)
def test_bad_uploads_say_what_is_wrong(data, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        decode_clip(data)


def test_limits():
    small = ClipLimits(max_frames=4, max_frame_pixels=100 * 100)
    with pytest.raises(ClipTooLargeError, match="bytes"):
        decode_clip(npy(masks(frames=3)), ClipLimits(max_bytes=100))
    with pytest.raises(ClipTooLargeError, match="frames"):
        decode_clip(npy(masks(frames=6)), small)
    with pytest.raises(ClipTooLargeError, match="pixels"):
        decode_clip(npy(np.zeros((2, 200, 200), np.uint8)), small)
    zipped = as_zip({f"{t}.png": png(masks()[0]) for t in range(6)})
    with pytest.raises(ClipTooLargeError, match="frames"):
        decode_clip(zipped, ClipLimits(max_frames=4))


def test_decompression_bombs_are_refused_before_decoding():
    # a PNG whose header declares 20000×20000 pixels, 70 bytes on the wire
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = (20000).to_bytes(4, "big") + (20000).to_bytes(4, "big")  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the chunk's CRC
    with pytest.raises(ClipTooLargeError, match=r"too large|20000×20000"):
        decode_clip(bytes(data))
    # a zip member that inflates far beyond its compressed size
    flood = as_zip({"0.png": b"\x00" * 5_000_000})
    with pytest.raises(UnsafeArchiveError, match="expands"):
        decode_clip(flood)


def _patched_member(data: bytes, flag_bits: int | None = None, method: int | None = None) -> bytes:
    """A one-member zip with its headers edited (both the local and the central one)."""
    out = bytearray(data)
    for signature, flags_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = out.find(signature)
        if flag_bits is not None:
            out[at + flags_at : at + flags_at + 2] = flag_bits.to_bytes(2, "little")
        if method is not None:
            out[at + method_at : at + method_at + 2] = method.to_bytes(2, "little")
    return bytes(out)


def test_broken_zip_members_are_refused_not_crashed_on():
    good = as_zip({"0.png": png(masks()[0])})
    with pytest.raises(UnsupportedFormatError, match="encrypted"):
        decode_clip(_patched_member(good, flag_bits=0x1))
    with pytest.raises(UnsupportedFormatError, match="method 99"):
        decode_clip(_patched_member(good, method=99))
    corrupt = bytearray(good)
    start = corrupt.find(b"PK\x03\x04") + 30 + len("0.png")
    corrupt[start : start + 8] = b"\xff" * 8  # the deflate stream itself
    with pytest.raises(CorruptClipError):
        decode_clip(bytes(corrupt))


def test_a_zip_of_too_many_entries_is_refused_before_its_directory_is_parsed():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n in range(2000):
            archive.writestr(f"{n}", b"")
    with pytest.raises(ClipTooLargeError, match="2000 entries"):
        decode_clip(buffer.getvalue(), ClipLimits(max_frames=100))


def npy_with_header(header: str) -> bytes:
    """A version 1.0 .npy file whose header is ``header`` as written, then 100 data bytes."""
    text = header.encode("latin1")
    text += b" " * (64 - (10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + bytes(100)


@pytest.mark.parametrize(
    "header",
    [
        "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 5, 10, }",  # an unclosed tuple
        "{'descr': '|u1', 'fortran_order': -False, 'shape': (2, 5, 10), }",  # minus a boolean
        "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 5, 10), '__class__': 1}",
        "not a dictionary at all",
    ],
)
def test_a_malformed_npy_header_is_a_corrupt_clip_in_our_words(header):
    """Found by fuzzing /identify: numpy's parser raised tokenize.TokenError (a 500) or
    quoted a memory address (``<ast.UnaryOp object at 0x…>``) into the 422's detail."""
    with pytest.raises(CorruptClipError) as caught:
        decode_clip(npy_with_header(header))
    assert str(caught.value).startswith("unreadable .npy array: its header is not")
    assert "0x" not in str(caught.value)
