"""``gaitlab video``: the people of an ordinary video. Only argparse at import time.

gaitlab video tracks VIDEO --out DIR            tracks.json + one clip per person
gaitlab video identify VIDEO --url URL          who they are, asked of a running service
                      [--annotate OUT.mp4]      and the video with their boxes and names
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROTATIONS = ("auto", "0", "90", "180", "270")


def register(commands: argparse._SubParsersAction) -> None:
    video = commands.add_parser("video", help="find, follow and identify people in a video")
    video_commands = video.add_subparsers(dest="video_command", required=True)

    tracks = video_commands.add_parser(
        "tracks", help="write tracks.json and one silhouette clip (.npy) per person"
    )
    tracks.add_argument("video", type=Path)
    tracks.add_argument("--out", type=Path, required=True, help="folder for tracks.json")
    _rotate_option(tracks)
    tracks.set_defaults(run=_run_tracks)

    identify = video_commands.add_parser(
        "identify", help="identify every person of the video with a running service"
    )
    identify.add_argument("video", type=Path)
    identify.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8000")
    identify.add_argument(
        "--api-key",
        default=os.environ.get("GAITLAB_API_KEY"),
        help="a client key of the service (default: $GAITLAB_API_KEY)",
    )
    identify.add_argument("--top-k", type=int, default=3)
    identify.add_argument(
        "--fpir",
        type=float,
        default=None,
        help="the share of strangers' searches that may be given a name (default: the model "
        "card's, 1 %%; docs/identification.md)",
    )
    identify.add_argument("--annotate", type=Path, help="write the video with boxes and names")
    identify.add_argument("--json", action="store_true", help="print the service's answer")
    _rotate_option(identify)
    identify.set_defaults(run=_run_identify)


def _rotate_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rotate",
        choices=ROTATIONS,
        default="auto",
        help="degrees clockwise that make people upright (auto: found for each person)",
    )


def _run_tracks(args: argparse.Namespace) -> int:
    from service.clip_limits import ClipError
    from service.people.limits import MissingExtraError, VideoLimits
    from service.people.load import load_models
    from service.people.pipeline import Options, find_people
    from service.people.source import VideoSource
    from service.people.tracks_file import write_tracks

    local = VideoLimits(max_frames=10**7, max_pixels=10**15, max_seconds=1e9)  # your own file
    turns = None if args.rotate == "auto" else int(args.rotate) // 90
    try:
        source = VideoSource(str(args.video), local)
        detector, segmenter = load_models()
        started = time.perf_counter()
        people = find_people(source, detector, segmenter, source.info.fps, Options(turns=turns))
        elapsed = time.perf_counter() - started
        document = write_tracks(people, source.info.fps, args.out)
    except (ClipError, MissingExtraError) as error:
        print(f"error: {getattr(error, 'detail', error)}", file=sys.stderr)
        return 2
    print(
        f"{people.frames} frames in {elapsed:.1f} s ({people.frames / elapsed:.1f} fps); "
        f"rotation {document['video']['rotation']}°"
    )
    for track in document["tracks"]:
        print(
            f"track {track['id']}: frames {track['frames'][0]}–{track['frames'][-1]}, "
            f"{len(track['clip_frames'])} silhouettes → {args.out / track['clip']}"
        )
    for track in document["dropped"]:
        print(f"track {track['id']} dropped: {track['reason']}")
    print(f"wrote {args.out / 'tracks.json'}")
    return 0


def multipart(fields: dict[str, str], name: str, filename: str, data: bytes):
    """A multipart/form-data body: (body, content type)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post(url: str, fields: dict[str, str], video: Path, key: str | None) -> tuple[int, bytes]:
    """POST a video as multipart; (status, body). A service that refuses a request from its
    headers (a wrong key, a body over the limit) answers and closes while the upload is still
    being sent: its answer is read all the same."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    body, content_type = multipart(fields, "clip", video.name, video.read_bytes())
    secure = parts.scheme == "https"
    connection = (http.client.HTTPSConnection if secure else http.client.HTTPConnection)(
        parts.netloc, timeout=600
    )
    try:
        connection.putrequest("POST", parts.path + (f"?{parts.query}" if parts.query else ""))
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body)))
        if key:
            connection.putheader("X-API-Key", key)
        connection.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.send(body)  # refused early, the answer is waiting all the same
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _run_identify(args: argparse.Namespace) -> int:
    query = f"top_k={args.top_k}&rotate={args.rotate}"
    if args.fpir is not None:
        query += f"&fpir={args.fpir}"
    try:
        status, raw = post(
            f"{args.url.rstrip('/')}/identify/video?{query}", {}, args.video, args.api_key
        )
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if status != 200:
        print(f"error: {status} {raw.decode(errors='replace')}", file=sys.stderr)
        return 2
    answer = json.loads(raw)
    if args.json:
        print(json.dumps(answer, indent=2))
    names = {}
    for track in answer["tracks"]:
        result = track["identify"]
        names[track["id"]] = result["decision"]
        hits = ", ".join(f"{h['subject_id']} {h['score']:.3f}" for h in result["hits"])
        if not args.json:
            print(
                f"track {track['id']}: frames {track['frames'][0]}–{track['frames'][-1]} "
                f"({result['frames']} silhouettes): {result['decision'] or 'unknown'}"
                f"  [{hits or 'empty gallery'}]"
            )
    for track in answer["dropped"]:
        if not args.json:
            print(f"track {track['id']} dropped: {track['reason']}")
    if args.annotate:
        from service.people.annotate import annotate

        frames = annotate(args.video, answer["tracks"] + answer["dropped"], names, args.annotate)
        print(f"wrote {args.annotate} ({frames} frames)", file=sys.stderr)
    return 0
