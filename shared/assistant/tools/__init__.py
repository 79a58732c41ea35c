"""Tools the model may call, and the registry that describes and runs them."""

from assistant.tools.builtin import build_registry, default_registry
from assistant.tools.registry import ToolContext, ToolError, ToolRegistry, ToolResult, UnknownToolError

__all__ = [
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "UnknownToolError",
    "build_registry",
    "default_registry",
]
