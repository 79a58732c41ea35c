"""A small synchronous facade over the official ``mcp`` SDK's streamable HTTP client.

The SDK is async (anyio) and the worker is sync, so each operation runs its own event loop with ``anyio.run``:
listing every server's tools is one loop (the servers are asked concurrently), a tool call is another. Each opens
its own MCP session (initialize, the request, close). That costs a handshake per call, which is small next to a
model round, and it keeps nothing alive between calls that could go stale in a frozen Lambda container.

Only :mod:`assistant.tools.mcp_tools` imports this module, and only when the definition declares a server: the
SDK and its dependencies take time to import, which a worker without MCP servers should not pay at cold start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

_T = TypeVar("_T")

# The SDK logs every session's id, its GET stream's reconnects and its termination at INFO; one session per call
# would fill the worker's log with them. Its warnings and errors still get through.
logging.getLogger("mcp").setLevel(logging.WARNING)

#: A listing may not hold up a reply for longer than this, whatever the server's call timeout.
LIST_TIMEOUT_S = 5.0
#: The largest single message (SSE event) read from a server: results are capped far below this before the model
#: sees them, but a result has to be read to be capped (the SDK's default of 1 MiB would make a big one an error),
#: and a bound keeps a runaway server from filling the worker's memory.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: Pages of ``tools/list`` read at most; a server with more tools than that is misconfigured for a chat assistant.
MAX_LIST_PAGES = 10


@dataclass(frozen=True)
class RemoteTool:
    """A tool as the server lists it."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one server for one operation."""

    url: str
    headers: Mapping[str, str]
    timeout_s: float


@dataclass(frozen=True)
class CallOutcome:
    """A tool call's result as text, and whether the server flagged it as an error."""

    is_error: bool
    text: str


def list_tools(endpoints: Mapping[str, Endpoint]) -> dict[str, list[RemoteTool] | Exception]:
    """Every server's tools, asked concurrently; a server that fails maps to its exception instead."""

    async def all_servers() -> dict[str, list[RemoteTool] | Exception]:
        results: dict[str, list[RemoteTool] | Exception] = {}

        async def one(name: str, endpoint: Endpoint) -> None:
            try:
                with anyio.fail_after(min(endpoint.timeout_s, LIST_TIMEOUT_S)):
                    results[name] = await _list(endpoint)
            except Exception as exc:  # every failure of one server is that server's result, not the listing's
                results[name] = exc

        async with anyio.create_task_group() as group:
            for name, endpoint in endpoints.items():
                group.start_soon(one, name, endpoint)
        return results

    return _run(all_servers)


def call_tool(endpoint: Endpoint, name: str, arguments: dict[str, Any]) -> CallOutcome:
    """Call one tool; raises ``TimeoutError`` past the endpoint's timeout and whatever the transport raises."""

    async def call() -> CallOutcome:
        with anyio.fail_after(endpoint.timeout_s):
            async with _session(endpoint) as session:
                result = await session.call_tool(name, arguments)
        return CallOutcome(is_error=bool(result.is_error), text=result_text(result))

    return _run(call)


def result_text(result: types.CallToolResult) -> str:
    """What the model reads: the text blocks in order; other content as a short note (a chat model offered
    function tools cannot take images here); structured content when there is no text at all."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.EmbeddedResource) and isinstance(block.resource, types.TextResourceContents):
            parts.append(block.resource.text)
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource: {block.uri}]")
        else:
            parts.append(f"[{block.type} content omitted]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


async def _list(endpoint: Endpoint) -> list[RemoteTool]:
    tools: list[RemoteTool] = []
    async with _session(endpoint) as session:
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(
                RemoteTool(
                    name=tool.name, description=tool.description or tool.title or "", input_schema=tool.input_schema
                )
                for tool in page.tools
            )
            cursor = page.next_cursor
            if not cursor:
                break
    return tools


@contextlib.asynccontextmanager
async def _session(endpoint: Endpoint) -> AsyncIterator[ClientSession]:
    """An initialized ``ClientSession`` over streamable HTTP, with this endpoint's headers and timeouts."""
    timeout = endpoint.timeout_s
    async with (
        httpx2.AsyncClient(headers=dict(endpoint.headers), timeout=httpx2.Timeout(timeout)) as http,
        streamable_http_client(endpoint.url, http_client=http, max_sse_event_size=MAX_MESSAGE_BYTES) as (read, write),
        ClientSession(read, write, read_timeout_seconds=timeout) as session,
    ):
        await session.initialize()
        yield session


def _run(function: Callable[[], Awaitable[_T]]) -> _T:
    """``anyio.run`` on this thread, or on a fresh one when this thread already runs an event loop (a sync caller
    inside async code, e.g. a test or the local stack's thread isolation)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(function)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, function).result()
