"""The floor under the service: the least a Python ASGI server spends on one upload here.

Two apps, served by ``bench/service.py --overhead`` with uvicorn (h11 and httptools) and loaded
by ApacheBench with the same multipart ``.npy`` upload as the service:

- ``bare``: raw ASGI, reads the whole body and answers a small JSON object;
- ``one_route``: FastAPI, one route taking the upload as ``UploadFile`` and answering its size.

Whatever the service adds on top (authentication, limits, metrics, logging, decoding, the
model, the search) costs more than these.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import FastAPI, File, UploadFile


async def bare(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    payload = json.dumps({"bytes": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


one_route = FastAPI()


@one_route.post("/identify")
async def identify(clip: Annotated[UploadFile, File()]) -> dict:
    return {"bytes": len(await clip.read())}
