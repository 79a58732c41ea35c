"""A small MCP server for ``make dev`` and the tests, built with the official SDK (``MCPServer``), on 127.0.0.1.

Its two tools are harmless and deterministic: ``word_count`` counts words, ``lookup_order`` looks an order up in
a made-up table. ``make dev`` starts it and offers its tools through a local definition (see
``scripts.local_stack.local_definition``), so "use the word_count tool on: …" shows an MCP tool call end to end
with the offline model. On its own: ``python -m scripts.local_stack.mcp_demo --port 8765`` (then name
``http://127.0.0.1:8765/mcp`` in a definition's ``[[mcp_servers]]``).

:class:`RunningMcpServer` serves any ``MCPServer`` on a free port in a thread (uvicorn), which is also how the
tests run their own servers with failing, slow and huge tools.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any, Final

import uvicorn
from mcp.server.mcpserver import MCPServer

#: The path the SDK serves streamable HTTP on.
MCP_PATH: Final = "/mcp"
DEMO_SERVER_NAME: Final = "demo"

_ORDERS: Final[dict[str, dict[str, Any]]] = {
    "A-1001": {"status": "shipped", "carrier": "Demo Parcel", "eta": "in 2 days", "items": 3},
    "A-1002": {"status": "processing", "carrier": None, "eta": "ships tomorrow", "items": 1},
    "A-1003": {"status": "delivered", "carrier": "Demo Parcel", "eta": None, "items": 2},
}


def demo_server() -> MCPServer:
    """The demo server's tools (made-up data only: nothing here reads files, the network or the caller)."""
    server = MCPServer(
        "assistant-demo",
        instructions="Demo tools for the local stack of the GPT assistant.",
        # The SDK logs every session at INFO (and configures the root logger if nothing has): console noise.
        log_level="WARNING",
    )
    logging.getLogger("mcp").setLevel(logging.WARNING)

    @server.tool()
    def word_count(text: str) -> int:
        """Count the words in a text (words are separated by whitespace)."""
        return len(text.split())

    @server.tool()
    def lookup_order(order_id: str) -> dict[str, Any]:
        """Look up a (made-up) order by its id, e.g. 'A-1001': its status, carrier and expected delivery."""
        order = _ORDERS.get(order_id.strip().upper())
        if order is None:
            known = ", ".join(sorted(_ORDERS))
            return {"order_id": order_id, "found": False, "hint": f"demo orders are {known}"}
        return {"order_id": order_id.strip().upper(), "found": True, **order}

    return server


class RunningMcpServer:
    """Serves ``server`` over streamable HTTP on ``127.0.0.1`` in a daemon thread; ``port=0`` picks a free port.

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``url`` is what a definition names.
    """

    def __init__(self, server: MCPServer, *, port: int = 0) -> None:
        self._app = server.streamable_http_app(streamable_http_path=MCP_PATH)
        self._requested_port = port
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{MCP_PATH}"

    def start(self, timeout_s: float = 10.0) -> str:
        # Bound here, not by uvicorn, so the port is known (and taken) before the thread starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._requested_port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app, log_level="warning", lifespan="on")
        server = self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"mcp-server-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the MCP server on port {self.port} did not start")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._uvicorn = None
        self._thread = None

    def __enter__(self) -> RunningMcpServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.local_stack.mcp_demo", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    args = parser.parse_args(argv)
    with RunningMcpServer(demo_server(), port=args.port) as running:
        print(f"Demo MCP server at {running.url} (tools: word_count, lookup_order). Ctrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
