"""The video pipeline on the six real phone clips (../shared/videos): people found against the
people in each clip, a picture per clip, and the identification matrix through a running
service (enroll A from one hall clip, B and C from the hall crossing, identify every track of
every other clip).

    gaitlab serve --data-dir /tmp/empty-gallery &          # the shipped default model
    python bench/video_quality.py --url http://127.0.0.1:8000 [--api-key KEY]
                                  [--pictures docs/images/video] [--videos ../shared/videos]

Who is who (../shared/videos/README.md, checked by eye on the frames): A grey-blue hoodie, B
orange-brown jacket, C olive jacket; listed here per clip in order of first appearance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.people.cli import post as send  # noqa: E402

PEOPLE = {  # clip → who appears, in order of first appearance
    "hall-grey-hoodie-side-a.mp4": ["A"],
    "hall-grey-hoodie-side-b.mp4": ["A"],
    "corridor-grey-hoodie-front.mp4": ["A"],
    "hall-two-walkers-side.mp4": ["C", "B"],
    "street-two-walkers-side.mp4": ["C", "B"],
    "lobby-two-walkers-rotated.mp4": ["B", "C"],
}
ENROLL = [("A", "hall-grey-hoodie-side-a.mp4", 1), ("C", "hall-two-walkers-side.mp4", 1)]
ENROLL += [("B", "hall-two-walkers-side.mp4", 2)]


def post(url: str, key: str | None, video: Path, fields: dict | None = None) -> dict:
    status, raw = send(url, fields or {}, video, key)
    if status not in (200, 201):
        raise RuntimeError(f"{status}: {raw.decode(errors='replace')}")
    return json.loads(raw)


def picture(video: Path, out: Path) -> str:
    """Frame (boxes drawn), the first person's square mask, and 8 of their normalised frames."""
    from service.people.annotate import draw
    from service.people.limits import VideoLimits
    from service.people.load import load_models
    from service.people.pipeline import find_people
    from service.people.source import VideoSource

    source = VideoSource(str(video), VideoLimits())
    people = find_people(source, *load_models(), source.info.fps)
    if not people.kept:
        return "nobody kept"
    track = people.kept[0]
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, track.thumbnail_frame)
    frame = capture.read()[1]
    capture.release()
    index = track.thumbnail_frame
    boxes = [(t.id, t.boxes[t.frames.index(index)]) for t in people.tracks if index in t.frames]
    draw(frame, boxes, {})
    height = 256
    frame = cv2.resize(frame, (round(frame.shape[1] * height / frame.shape[0]), height))
    mask = cv2.cvtColor(track.mask, cv2.COLOR_GRAY2BGR)
    clip = track.clip()
    chosen = clip[np.linspace(0, len(clip) - 1, 8).round().astype(int)]
    strip = cv2.resize(np.hstack(list(chosen)), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    strip = cv2.cvtColor(strip, cv2.COLOR_GRAY2BGR)
    strip = np.pad(strip, ((0, height - strip.shape[0]), (0, 0), (0, 0)))
    gap = np.full((height, 8, 3), 255, np.uint8)
    cv2.imwrite(str(out), np.hstack([frame, gap, mask, gap, strip]), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return f"{out} (frame {index})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key")
    parser.add_argument("--videos", type=Path, default=REPO.parent / "shared" / "videos")
    parser.add_argument("--pictures", type=Path, help="write one JPEG per clip here")
    args = parser.parse_args()
    url = args.url.rstrip("/")

    print("| clip | people in it | tracks kept | dropped |")
    print("|---|---|---|---|")
    answers = {}
    for name, who in PEOPLE.items():
        answers[name] = post(f"{url}/identify/video?top_k=3", args.api_key, args.videos / name)
        kept = answers[name]["tracks"]
        dropped = "; ".join(f"{d['id']}: {d['reason']}" for d in answers[name]["dropped"])
        spans = ", ".join(f"{t['id']} ({t['frames'][0]}–{t['frames'][-1]})" for t in kept)
        print(f"| {name} | {len(who)} ({', '.join(who)}) | {len(kept)}: {spans} | {dropped} |")
    if args.pictures:
        args.pictures.mkdir(parents=True, exist_ok=True)
        for name in PEOPLE:
            out = args.pictures / (name.rsplit(".", 1)[0] + ".jpg")
            print(f"picture: {picture(args.videos / name, out)}")

    for subject, name, track in ENROLL:
        sample = post(
            f"{url}/gallery/subjects/{subject}/samples/video",
            args.api_key,
            args.videos / name,
            {"track": str(track)},
        )
        print(f"enrolled {subject}: {name} track {track}, {sample['frames']} frames")
    print()
    print("| clip | track | is | decision | top 1 | A | B | C |")
    print("|---|---|---|---|---|---|---|---|")
    right = named = total = 0
    for name, who in PEOPLE.items():
        if name in {n for _, n, _ in ENROLL}:
            continue
        found = post(f"{url}/identify/video?top_k=3", args.api_key, args.videos / name)
        for position, track in enumerate(found["tracks"]):
            result = track["identify"]
            truth = who[position] if position < len(who) else "?"
            scores = {h["subject_id"]: h["score"] for h in result["hits"]}
            top = result["hits"][0]["subject_id"] if result["hits"] else None
            total += 1
            right += top == truth
            named += result["decision"] == truth
            cells = [f"{scores.get(s, float('nan')):.3f}" for s in "ABC"]
            decision = result["decision"] or "unknown"
            print(
                f"| {name} | {track['id']} | {truth} | {decision} | {top} | "
                + " | ".join(cells)
                + " |"
            )
    print(f"\ntop 1 right: {right} of {total}; named right (decision): {named} of {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
