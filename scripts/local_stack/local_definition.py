"""Which assistant definition the local stack's functions load, and the MCP servers and secrets it needs.

- ``ASSISTANT_FILE`` set (or ``LocalStackSettings.assistant_file``): that file, as it is.
- Otherwise: the packaged ``assistant.toml`` plus the demo MCP server (``scripts.local_stack.mcp_demo``), which
  this starts on a free port of 127.0.0.1, written to a file of its own. The packaged definition, the one that is
  deployed, never names a server on localhost; only the local copy does.

Either way the definition is validated here, so a mistake fails ``make dev`` at once with the file and the field,
and each secret an MCP server names is copied from ``MCP_SECRET_<NAME>`` (see ``assistant.tools.mcp_config``)
into moto's Secrets Manager, where the worker reads it exactly as it does deployed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from assistant.definition import PACKAGED_DEFINITION, AssistantDefinition, load_definition
from assistant.tools.mcp_config import secret_env_var
from assistant.wiring import Env

log = logging.getLogger("local_stack")

DEMO_SERVER_BLOCK = """
# Added by the local stack (make dev), not part of the deployed definition: the demo MCP server on this machine.
# Try "use the word_count tool on: the quick brown fox" or "use the lookup_order tool for A-1001".
[[mcp_servers]]
name = "{name}"
url = "{url}"
"""


class LocalDefinition:
    """Picks or writes the definition file and runs the demo MCP server when that file uses it."""

    def __init__(self, assistant_file: Path | None = None, *, directory: Path | None = None) -> None:
        from_env = os.environ.get(Env.ASSISTANT_FILE.value) or None
        self.user_file = assistant_file or (Path(from_env) if from_env else None)
        self._directory = directory
        self._temporary: Path | None = None
        self.demo: Any = None  # RunningMcpServer; imported only when started (it pulls in the mcp SDK)
        self.path: Path | None = None
        self.definition: AssistantDefinition | None = None

    def start(self) -> Path:
        """The absolute path of the definition the functions load (their ``ASSISTANT_FILE``)."""
        path = self.user_file.expanduser().resolve() if self.user_file is not None else self._write_with_demo_server()
        # Absolute: the functions may run in processes with another working directory.
        self.definition = load_definition(path)
        self.path = path
        return path

    def store_secrets(self, secretsmanager: Any, environ: Mapping[str, str] | None = None) -> None:
        """Copy each MCP server's secret from ``MCP_SECRET_<NAME>`` into (moto's) Secrets Manager."""
        env = os.environ if environ is None else environ
        for server in self.definition.mcp_servers if self.definition else ():
            if server.secret is None:
                continue
            variable = secret_env_var(server.secret)
            value = env.get(variable)
            if not value:
                log.warning(
                    "MCP server %r names the secret %r but %s is not set: its tools will not be offered",
                    server.name,
                    server.secret,
                    variable,
                )
                continue
            secretsmanager.create_secret(Name=server.secret, SecretString=value)

    def stop(self) -> None:
        if self.demo is not None:
            self.demo.stop()
            self.demo = None
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    def _write_with_demo_server(self) -> Path:
        from scripts.local_stack.mcp_demo import DEMO_SERVER_NAME, RunningMcpServer, demo_server

        self.demo = RunningMcpServer(demo_server())
        url = self.demo.start()
        packaged = resources.files("assistant").joinpath(PACKAGED_DEFINITION).read_text(encoding="utf-8")
        directory = self._directory
        if directory is None:
            directory = self._temporary = Path(tempfile.mkdtemp(prefix="assistant-definition-"))
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "assistant.toml"
        path.write_text(
            packaged.rstrip("\n") + "\n" + DEMO_SERVER_BLOCK.format(name=DEMO_SERVER_NAME, url=url), encoding="utf-8"
        )
        log.info("Assistant definition: %s (the packaged one plus the demo MCP server at %s)", path, url)
        return path.resolve()
