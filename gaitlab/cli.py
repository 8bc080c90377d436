"""The ``gaitlab`` command: one entry point over the packages' own command groups.

Each package declares its commands in its ``cli`` module, which imports nothing heavy at import
time, so ``gaitlab --help`` and the data commands work on the base install without torch. The
service and training never import each other; only this dispatcher sees both.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gaitlab import __version__


def build_parser() -> argparse.ArgumentParser:
    from service import cli as service_cli
    from service.people import cli as video_cli
    from training import cli as training_cli

    parser = argparse.ArgumentParser(
        prog="gaitlab",
        description="Gait recognition from silhouettes: data, training, evaluation, serving.",
    )
    parser.add_argument("--version", action="version", version=f"gaitlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    training_cli.register(commands)
    service_cli.register(commands)
    video_cli.register(commands)
    _register_gallery(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _register_gallery(commands: argparse._SubParsersAction) -> None:
    gallery = commands.add_parser("gallery", help="bulk gallery operations")
    gallery_commands = gallery.add_subparsers(dest="gallery_command", required=True)
    build = gallery_commands.add_parser(
        "build", help="enroll a CASIA-B partition (into a store, or through a running service)"
    )
    build.add_argument("--casia-b", type=Path, required=True, help="pkl tree")
    build.add_argument("--subjects", default="075-124")
    build.add_argument("--conditions", default="nm-01,nm-02,nm-03,nm-04")
    target = build.add_mutually_exclusive_group(required=True)
    target.add_argument("--data-dir", type=Path, help="store of a service that is not running")
    target.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8000")
    build.add_argument(
        "--api-key",
        default=os.environ.get("GAITLAB_API_KEY"),
        help="with --url: an admin key of the service (default: $GAITLAB_API_KEY)",
    )
    build.add_argument(
        "--model", type=Path, default=None, help="with --data-dir (default: shipped)"
    )
    build.add_argument("--batch-size", type=int, default=16)
    build.add_argument(
        "--min-frames", type=int, default=5, help="leave out shorter sequences (as the service)"
    )
    build.set_defaults(run=_run_gallery_build)


def _run_gallery_build(args: argparse.Namespace) -> int:
    from gaitlab.gallery_build import build_into_store, build_through_api
    from models.default import default_model_path
    from training.data.subjects import parse_subjects

    try:
        subjects = parse_subjects(args.subjects)
        conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
        if args.url:
            report = build_through_api(
                args.casia_b,
                subjects,
                conditions,
                args.url,
                min_frames=args.min_frames,
                api_key=args.api_key,
            )
        else:
            model = args.model or default_model_path("auto")  # what the service serves
            report = build_into_store(
                args.casia_b,
                subjects,
                conditions,
                args.data_dir,
                model,
                args.batch_size,
                args.min_frames,
            )
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if report.fallback:
        print(f"warning: {report.fallback}", file=sys.stderr)
    print(
        f"enrolled {report.sequences} sequences of {report.subjects} subjects "
        f"({report.skipped} left out: shorter than {args.min_frames} frames, empty or unreadable)"
        + (f" with {report.model_version}" if report.model_version else "")
    )
    return 0
