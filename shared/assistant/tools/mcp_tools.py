"""The definition's MCP servers as tools the model can call.

- Listing: each server's tools are listed over MCP (:mod:`assistant.tools.mcp_session`) and kept per container for
  :data:`LISTING_TTL_S`, so a warm worker asks once a minute, not once a reply; a server that cannot be listed is
  left out (and asked again after :data:`FAILED_LISTING_TTL_S`) while the other tools are still offered.
- Calling: with the server's timeout; the result is capped at the server's ``max_result_chars``. A failing, slow or
  unreachable server becomes an error result the model reads, never an exception: the reply goes on.
- What is sent: the model's arguments; ``Authorization: Bearer`` with the secret's value if the server names a
  secret; the user's id (``X-Assistant-User-Id``) only if the server has ``send_user_id = true``. Nothing else.

This module does not import the ``mcp`` SDK; :mod:`assistant.tools.mcp_session` does, on first use, which happens
only when the definition declares a server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger

from assistant.tools.mcp_config import USER_ID_HEADER, McpServerConfig
from assistant.tools.mcp_specs import function_name, function_tool
from assistant.tools.registry import ToolContext, ToolResult

if TYPE_CHECKING:
    from assistant.tools.mcp_session import Endpoint, RemoteTool

#: A child of the functions' Powertools logger: its lines carry the invocation's correlation id and user.
logger = Logger(child=True)

#: How long a server's tool list is reused by a warm container.
LISTING_TTL_S: Final = 60.0
#: How long a server that could not be listed is left out before it is asked again (each try can cost a reply up
#: to the listing timeout, so not on every reply).
FAILED_LISTING_TTL_S: Final = 15.0
#: The most tools offered to the model in one request (OpenAI refuses more than 128).
MAX_OFFERED_TOOLS: Final = 128

#: Returns a secret's value by name (Secrets Manager deployed, the environment in ``try_assistant``).
SecretSource = Callable[[str], str]
#: Told the kind of every failure ("list", "call", "timeout", "unreachable", "tool_error"), for a metric.
FailureSink = Callable[[str], None]


@dataclass(frozen=True)
class McpTool:
    """One MCP tool as offered to the model."""

    name: str
    server: McpServerConfig
    tool: str
    spec: dict[str, Any]


@dataclass
class _Listing:
    expires_at: float
    tools: tuple[RemoteTool, ...] | None


class McpTools:
    """Tools of the definition's MCP servers. Thread-safe; one instance per container, shared by every reply."""

    def __init__(
        self,
        servers: Sequence[McpServerConfig],
        *,
        secret: SecretSource,
        on_failure: FailureSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._servers = {server.name: server for server in servers}
        self._secret = secret
        self._on_failure = on_failure or (lambda kind: None)
        self._clock = clock
        self._listings: dict[str, _Listing] = {}
        self._lock = threading.Lock()

    def offer(self, reserved: Collection[str] = ()) -> dict[str, McpTool]:
        """The tools to offer for one reply, by the name the model sees. Names in ``reserved`` (the built-in tools)
        win over an MCP tool that would get the same name."""
        offered: dict[str, McpTool] = {}
        for server, tools in self._listed().items():
            allowed = server.allowed_tools
            for remote in tools:
                if allowed is not None and remote.name not in allowed:
                    continue
                name = function_name(server.name, remote.name)
                if name in offered or name in reserved:
                    logger.warning("MCP tool name taken; tool not offered", extra={"server": server.name, "tool": name})
                    continue
                if len(offered) + len(reserved) >= MAX_OFFERED_TOOLS:
                    logger.warning("Too many tools; the rest are not offered", extra={"limit": MAX_OFFERED_TOOLS})
                    return offered
                spec = function_tool(name, remote.description, remote.input_schema)
                offered[name] = McpTool(name=name, server=server, tool=remote.name, spec=spec)
        return offered

    def invoke(self, tool: McpTool, arguments_json: str, context: ToolContext) -> ToolResult:
        """Call ``tool`` for the model. Never raises: every failure is an error result the model can read."""
        from assistant.tools import mcp_session

        server = tool.server
        where = {"server": server.name, "tool": tool.tool}
        try:
            arguments = json.loads(arguments_json) if arguments_json.strip() else {}
        except json.JSONDecodeError:
            return _error("The arguments are not valid JSON.")
        if not isinstance(arguments, dict):
            return _error("The arguments must be a JSON object.")
        try:
            endpoint = self._endpoint(server, context, timeout_s=server.timeout_seconds)
            outcome = mcp_session.call_tool(endpoint, tool.tool, arguments)
        except TimeoutError:
            logger.warning("MCP tool call timed out", extra={**where, "timeout_s": server.timeout_seconds})
            self._on_failure("timeout")
            return _error(f"The {server.name} server did not answer within {server.timeout_seconds:g} seconds.")
        except Exception as exc:
            logger.warning("MCP tool call failed", extra={**where, "cause": describe(exc)})
            self._on_failure("call")
            return _error(f"The {server.name} server could not be reached or failed to answer.")
        text = cap(outcome.text, server.max_result_chars)
        if outcome.is_error:
            logger.info("MCP tool reported an error", extra=where)
            self._on_failure("tool_error")
            return _error(text or f"The tool {tool.tool!r} failed.")
        return ToolResult(ok=True, output=text)

    def _listed(self) -> dict[McpServerConfig, tuple[RemoteTool, ...]]:
        """Every server's current tools, listing those whose cached list has expired (concurrently, once)."""
        with self._lock:
            now = self._clock()
            due = [name for name in self._servers if (self._listings.get(name) or _EXPIRED).expires_at <= now]
            if due:
                self._refresh(due, now)
            return {
                self._servers[name]: listing.tools
                for name, listing in self._listings.items()
                if listing.tools is not None
            }

    def _refresh(self, names: Sequence[str], now: float) -> None:
        from assistant.tools import mcp_session

        endpoints: dict[str, Endpoint] = {}
        for name in names:
            try:
                endpoints[name] = self._endpoint(self._servers[name], None, timeout_s=mcp_session.LIST_TIMEOUT_S)
            except Exception as exc:
                self._failed_listing(name, now, exc)
        for name, result in mcp_session.list_tools(endpoints).items():
            if isinstance(result, Exception):
                self._failed_listing(name, now, result)
            else:
                self._listings[name] = _Listing(expires_at=now + LISTING_TTL_S, tools=tuple(result))

    def _failed_listing(self, name: str, now: float, exc: Exception) -> None:
        logger.warning(
            "MCP server could not be listed; its tools are not offered for now",
            extra={"server": name, "cause": describe(exc), "retry_after_s": FAILED_LISTING_TTL_S},
        )
        self._on_failure("list")
        self._listings[name] = _Listing(expires_at=now + FAILED_LISTING_TTL_S, tools=None)

    def _endpoint(self, server: McpServerConfig, context: ToolContext | None, *, timeout_s: float) -> Endpoint:
        from assistant.tools.mcp_session import Endpoint

        headers: dict[str, str] = {}
        if server.secret is not None:
            headers["Authorization"] = f"Bearer {self._secret(server.secret)}"
        if server.send_user_id and context is not None:
            headers[USER_ID_HEADER] = context.user_id
        return Endpoint(url=server.url, headers=headers, timeout_s=timeout_s)


_EXPIRED: Final = _Listing(expires_at=float("-inf"), tools=None)


def cap(text: str, limit: int) -> str:
    """At most ``limit`` characters, with a note the model can read when something was cut."""
    if len(text) <= limit:
        return text
    note = f"\n[truncated: the tool returned {len(text)} characters; only the first {limit} are shown]"
    return text[: max(0, limit - len(note))] + note


def describe(exc: BaseException) -> str:
    """The innermost cause of a failure, for the log (the SDK wraps transport errors in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:500]


def _error(message: str) -> ToolResult:
    return ToolResult(ok=False, output=json.dumps({"error": message}))


def env_secret(environ: Mapping[str, str]) -> SecretSource:
    """Secrets from the environment (``MCP_SECRET_<NAME>``), for running without Secrets Manager."""
    from assistant.tools.mcp_config import secret_env_var

    def read(name: str) -> str:
        value = environ.get(secret_env_var(name), "").strip()
        if not value:
            raise LookupError(f"set {secret_env_var(name)} to the value of the secret {name!r}")
        return value

    return read
