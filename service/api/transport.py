"""The HTTP/1.1 transport: uvicorn on httptools (llhttp, in C), not h11 (pure Python).

On this 2-core machine h11 cost 0.60 ms of CPU per upload of a bare ASGI app, httptools 0.24 ms
(README "Speed"). llhttp is also stricter: it refuses a request that sends both
``Content-Length`` and ``Transfer-Encoding`` (request smuggling) outright.

Two refusals happen here, before the app sees a request, in the API's error shape
(``{"error": …, "detail": …}``) instead of uvicorn's plain text:

- a request llhttp cannot parse: 400 ``bad_request``;
- a request line and headers still incomplete after ``MAX_HEAD`` bytes: 431
  ``headers_too_large``. llhttp itself has no such limit (h11 had 16 KiB), and it buffers a
  header's value until the value ends, so the count is kept on the bytes received, not on the
  parsed headers: at most ``MAX_HEAD`` plus one socket read is held for an unfinished head.

Such refusals are not counted in the metrics: the app never sees them.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.api.errors import body

MAX_HEAD = 16 * 1024  # bytes of request line and headers (h11's limit)
INVALID_HTTP = (
    "not a valid HTTP/1.1 request (a malformed request line or header, or both Content-Length "
    "and Transfer-Encoding)"
)
STATUS_LINES = {400: b"400 Bad Request", 431: b"431 Request Header Fields Too Large"}


class JsonErrorsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a limit on the request head, answering what it refuses
    with the API's JSON errors."""

    _head_done = False  # the current request's headers are complete
    _head_bytes = 0  # bytes received since the current request began, while its head was not

    def data_received(self, data: bytes) -> None:
        if not self._head_done:
            if self._head_bytes > MAX_HEAD:
                detail = f"the request line and headers exceed {MAX_HEAD} bytes"
                self._refuse(431, "headers_too_large", detail)
                return
            self._head_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_done, self._head_bytes = False, 0

    def on_headers_complete(self) -> None:
        self._head_done = True
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "bad_request", INVALID_HTTP)

    def _refuse(self, status: int, code: str, detail: str) -> None:
        if self.transport.is_closing():
            return
        payload = json.dumps(body(code, detail)).encode()
        head = [b"HTTP/1.1 " + STATUS_LINES[status] + b"\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(payload),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + payload)
        self.transport.close()
