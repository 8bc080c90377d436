"""Command-line front end of the service (``gaitlab serve``). Only argparse at import time."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", type=Path, default=None, help="gallery folder (SQLite)")
    serve.add_argument("--model", type=Path, default=None, help="ONNX model (default: shipped)")
    serve.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    serve.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from service.api.transport import JsonErrorsHttpToolsProtocol
    from service.gallery import open_store
    from service.gallery.store import StoreVersionError
    from service.logs import configure_logging
    from service.main import create_app
    from service.settings import InsecureBindError, Settings

    try:
        settings = Settings.from_env(data_dir=args.data_dir, model=args.model, device=args.device)
        settings.check_bind(args.host)
        if settings.model is None:
            settings.default_model()
        open_store(settings.store_target).close()  # created, migrated, or refused here
    except (ValidationError, InsecureBindError, FileNotFoundError, StoreVersionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    if not settings.auth_enabled:
        logging.getLogger("gaitlab.service").warning(
            "no API keys configured: authentication is off, so the service listens on "
            f"{args.host} only (set GAITLAB_ADMIN_KEYS and GAITLAB_CLIENT_KEYS to expose it)"
        )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        http=JsonErrorsHttpToolsProtocol,
        log_config=None,
        access_log=False,
    )
    return 0
