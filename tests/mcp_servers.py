"""An MCP server for tests, built with the official SDK and served over streamable HTTP on 127.0.0.1.

Its tools cover what the assistant must survive: a result, a tool that fails, one slower than any test timeout,
one whose result is far too big, one with an optional parameter (not strict-able), and ``whoami``, which reports
the headers that identify a caller, so tests can see exactly what the worker sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from assistant.tools.mcp_config import USER_ID_HEADER
from scripts.local_stack.mcp_demo import RunningMcpServer

#: Longer than any timeout a test sets; the tool returns early only when its server stops.
SLOW_TOOL_SECONDS = 5.0
HUGE_RESULT_CHARS = 1_000_000


def build_test_server() -> MCPServer:
    server = MCPServer("assistant-tests", log_level="WARNING")

    @server.tool()
    def word_count(text: str) -> int:
        """Count the words in a text."""
        return len(text.split())

    @server.tool()
    def explode(reason: str) -> str:
        """Always fails, with the reason as its error message."""
        raise ToolError(f"exploded: {reason}")

    @server.tool()
    def slow_echo(text: str) -> str:
        """Answers after several seconds."""
        time.sleep(SLOW_TOOL_SECONDS)
        return text

    @server.tool()
    def huge(text: str) -> str:
        """Returns a megabyte of text."""
        return (text or "x") * (HUGE_RESULT_CHARS // max(1, len(text or "x")))

    @server.tool()
    def repeat(text: str, times: int = 2) -> str:
        """Repeats a text (times is optional, so the schema is not strict)."""
        return " ".join([text] * times)

    @server.tool()
    def whoami(ctx: Context) -> dict[str, Any]:
        """The caller's identifying headers, as the server received them."""
        request = ctx.request_context.request
        headers = getattr(request, "headers", {})
        return {"user": headers.get(USER_ID_HEADER), "authorization": headers.get("authorization")}

    return server


@contextmanager
def running_test_server() -> Iterator[RunningMcpServer]:
    with RunningMcpServer(build_test_server()) as running:
        yield running
