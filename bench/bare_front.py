"""The service with ``POST /identify`` answered without FastAPI: what FastAPI's routing,
dependency solving, form parsing and response model cost the service.

    python bench/bare_front.py --port 8001 --data-dir DIR --model MODEL

Run by ``bench/service.py --overhead`` beside the service itself. The app is the service's own
(``create_app``), with one more middleware inside the request gate and the metrics, so
authentication, limits, slots, the access log and ``/metrics`` still apply: it answers
``/identify`` by hand (the multipart body split at its boundary, the query read with
``urllib``, the same recognizer called on an executor thread, the answer written with ``json``)
and passes every other request on. For measuring only: it skips the checks the API makes on
its input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qsl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class BareIdentify:
    """ASGI middleware: ``POST /identify`` by hand, everything else to ``app``."""

    def __init__(self, app, service, threads: int):
        self.app, self.service = app, service  # service: the FastAPI app (its state)
        self.pool = ThreadPoolExecutor(threads)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/identify":
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        boundary = b"--" + dict(scope["headers"])[b"content-type"].split(b"boundary=")[1]
        start = body.index(b"\r\n\r\n") + 4
        upload = body[start : body.index(b"\r\n" + boundary, start)]
        query = dict(parse_qsl(scope["query_string"].decode()))
        threshold = float(query["threshold"]) if "threshold" in query else None
        recognizer = self.service.state.recognizer
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            self.pool, recognizer.identify, upload, int(query.get("top_k", 5)), threshold
        )
        hits = [
            {"subject_id": h.subject_id, "sample_id": h.sample_id, "score": h.score}
            for h in result.hits
        ]
        payload = json.dumps(
            {
                "decision": result.decision,
                "threshold": result.threshold,
                "hits": hits,
                "frames": result.frames,
                "model_version": result.model_version,
                "probe": None,
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def main() -> int:
    import uvicorn
    from starlette.middleware import Middleware

    from service.api.transport import JsonErrorsHttpToolsProtocol
    from service.logs import configure_logging
    from service.main import create_app
    from service.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    args = parser.parse_args()
    settings = Settings.from_env(data_dir=args.data_dir, model=args.model, device="cpu")
    configure_logging(settings.log_format)
    app = create_app(settings)
    # innermost of the user middleware: inside the gate and the metrics
    app.user_middleware.append(
        Middleware(BareIdentify, service=app, threads=settings.request_threads)
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        http=JsonErrorsHttpToolsProtocol,
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
