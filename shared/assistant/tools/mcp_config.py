"""How the definition names an MCP server (``[[mcp_servers]]`` in ``assistant.toml``).

Kept apart from the client (:mod:`assistant.tools.mcp_tools`) so loading a definition, synthesizing the stack and
the local stack can all read it without importing the ``mcp`` SDK. What leaves the worker for a server is decided
here and nowhere else: the tool call's arguments, a bearer token only if ``secret`` is set, and the user's id only
if ``send_user_id`` is true.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

#: Server names become the prefix of every tool name the model sees (``<name>__<tool>``), within the 64 characters
#: a function name may have, so they are short and use only the characters such names allow.
SERVER_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
#: Secrets Manager's name alphabet.
SECRET_NAME_PATTERN: Final = r"^[A-Za-z0-9/_+=.@-]{1,256}$"  # noqa: S105 - a pattern, not a secret
#: The header that carries the user's id to a server that asks for it (``send_user_id = true``).
USER_ID_HEADER: Final = "X-Assistant-User-Id"
#: Where a secret's value comes from when there is no Secrets Manager (``scripts.try_assistant``) and what the
#: local stack copies into its moto Secrets Manager: ``MCP_SECRET_`` + the name in upper case, other characters
#: as ``_`` (``orders-mcp-token`` -> ``MCP_SECRET_ORDERS_MCP_TOKEN``).
SECRET_ENV_PREFIX: Final = "MCP_SECRET_"  # noqa: S105 - a variable name prefix
_LOOPBACK_NAMES: Final = frozenset({"localhost"})


def secret_env_var(secret_name: str) -> str:
    """The environment variable that stands in for Secrets Manager locally (see :data:`SECRET_ENV_PREFIX`)."""
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", secret_name).upper()


def is_loopback_host(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class McpServerConfig(BaseModel):
    """One remote MCP server (streamable HTTP transport) whose tools the model is offered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=SERVER_NAME_PATTERN)]
    url: str
    #: Only these of the server's tools are offered (by the server's own names); ``None`` offers all of them.
    allowed_tools: tuple[Annotated[str, StringConstraints(min_length=1, max_length=128)], ...] | None = None
    #: A Secrets Manager secret (by name) whose value is sent as ``Authorization: Bearer <value>``.
    secret: Annotated[str, StringConstraints(pattern=SECRET_NAME_PATTERN)] | None = None
    #: Send the calling user's id in :data:`USER_ID_HEADER`. Off by default: a server learns nothing about who asks.
    send_user_id: bool = False
    #: Seconds one tool call may take, connecting included; a slower call gives the model an error result.
    timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    #: Characters of a result the model gets; the rest is cut off with a note saying so.
    max_result_chars: int = Field(default=20_000, ge=200, le=200_000)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        """https anywhere; plain http only to this machine (a bearer token or user id must not cross a network
        in the clear, and a deployed worker has nothing listening on its loopback)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://mcp.example.com/mcp")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("must use https (plain http is accepted for 127.0.0.1/localhost only)")
        if parts.username or parts.password:
            raise ValueError("must not contain credentials; name a Secrets Manager secret in `secret` instead")
        return url

    @field_validator("allowed_tools")
    @classmethod
    def _unique_tools(cls, tools: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if tools is not None and len(set(tools)) != len(tools):
            raise ValueError("a tool is listed more than once")
        return tools

    @property
    def is_local(self) -> bool:
        """Whether the server is on this machine (the local stack's demo server): never right for a deployment."""
        return is_loopback_host(urlsplit(self.url).hostname or "")
