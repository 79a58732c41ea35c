"""What one reply may call: the definition's built-in tools and its MCP servers' tools, fixed for the reply.

MCP tools come and go with their servers, so the set is taken once when a reply starts (:meth:`Toolbox.offer`)
and every round of that reply is offered, and may run, exactly that set: a tool the model was not offered is
refused even if it is registered or a server has it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from assistant.tools.registry import ToolContext, ToolRegistry, ToolResult

if TYPE_CHECKING:
    from assistant.tools.mcp_tools import McpTool, McpTools

#: A child of the functions' Powertools logger: its lines carry the invocation's correlation id and user.
logger = Logger(child=True)


@dataclass(frozen=True)
class OfferedTools:
    """The tools of one reply: their specs for the request, and how to run a call to one of them."""

    registry: ToolRegistry
    builtin: tuple[str, ...]
    specs: list[dict[str, Any]]
    mcp: Mapping[str, McpTool] = field(default_factory=dict)
    mcp_tools: McpTools | None = None

    def invoke(self, name: str, arguments_json: str, context: ToolContext) -> ToolResult:
        """Run a call the model made. Never raises for the model's or a tool's failures (see the registry)."""
        if name in self.builtin:
            return self.registry.invoke(name, arguments_json, context)
        remote = self.mcp.get(name)
        if remote is not None and self.mcp_tools is not None:
            return self.mcp_tools.invoke(remote, arguments_json, context)
        # Registered is not enough: the definition (and, for MCP, this reply's listing) decides what may run.
        logger.warning("Model called a tool it was not offered", extra={"tool": name})
        return ToolResult(ok=False, output=json.dumps({"error": f"There is no tool named {name!r}."}))


class Toolbox:
    """Built-in tools named by the definition plus, if it declares servers, their MCP tools."""

    def __init__(self, registry: ToolRegistry, builtin: Sequence[str], mcp: McpTools | None = None) -> None:
        self._registry = registry
        self._builtin = tuple(builtin)
        self._builtin_specs = registry.specs(self._builtin)
        self._mcp = mcp

    def offer(self) -> OfferedTools:
        """The tools for one reply. Lists MCP servers whose cached listing expired; a server that fails is left
        out, never the reply."""
        if self._mcp is None:
            return OfferedTools(self._registry, self._builtin, list(self._builtin_specs))
        remote = self._mcp.offer(reserved=self._builtin)
        specs = [*self._builtin_specs, *(tool.spec for tool in remote.values())]
        return OfferedTools(self._registry, self._builtin, specs, mcp=remote, mcp_tools=self._mcp)
