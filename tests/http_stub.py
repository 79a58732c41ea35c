"""A stdlib HTTP server on 127.0.0.1 for tests: each request is read and handed to a function that answers it.

The tests' stand-ins for an HTTP service (a scripted Responses API, a recorder of signed requests, a SigV4 front of
the offline model) differ only in that function; the server, its thread, the body read by ``Content-Length`` and the
silenced request log are this module's.

    def respond(request: StubRequest) -> None:
        request.answer_json(200, {"ok": True})

    with http_stub(respond) as origin:  # "http://127.0.0.1:<port>"
        ...
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StubRequest:
    """One request, its body already read, and the means to answer it (on the server's thread for that request)."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._handler = handler
        self.method = handler.command
        #: With its query string, as the client sent it.
        self.path = handler.path
        self.headers = handler.headers
        length = int(handler.headers.get("Content-Length") or 0)
        self.body = handler.rfile.read(length) if length else b""

    def json(self) -> Any:
        """The body as JSON; ``{}`` when there is none."""
        return json.loads(self.body) if self.body else {}

    def start(self, status: int, headers: Mapping[str, str]) -> None:
        """The status line and headers; the body follows with :meth:`write` (HTTP/1.0: it ends with the connection)."""
        self._handler.send_response(status)
        for name, value in headers.items():
            self._handler.send_header(name, value)
        self._handler.end_headers()

    def write(self, chunk: bytes) -> None:
        self._handler.wfile.write(chunk)
        self._handler.wfile.flush()

    def answer_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.start(status, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        self.write(body)

    def error(self, status: int, message: str) -> None:
        self._handler.send_error(status, message)


Respond = Callable[[StubRequest], None]


@contextmanager
def http_stub(respond: Respond, *, methods: Collection[str] = ("GET", "POST")) -> Iterator[str]:
    """Serve ``respond`` for ``methods`` (others get the stdlib's 501) until the block ends; yields the origin."""

    def handle(handler: BaseHTTPRequestHandler) -> None:
        respond(StubRequest(handler))

    def quiet(handler: BaseHTTPRequestHandler, format: str, *args: Any) -> None:
        pass

    handler_class = type(
        "StubHandler",
        (BaseHTTPRequestHandler,),
        {"log_message": quiet, **{f"do_{method}": handle for method in methods}},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    # A short poll: shutdown() waits for the loop to look.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
