"""open-responses-server, a Responses-to-Chat-Completions bridge this project did not write, run as a process.

It is installed from PyPI into a venv of its own (``make .venv-bridge/.stamp``, pinned in requirements/bridge.txt):
its dependencies (``httpx``, FastAPI, uvicorn, an ``mcp`` of its own) have no business in the Lambda's dependency
set. It is configured only by environment variables (``open_responses_server/common/config.py``) and serves
``POST /responses`` at its root, so the ``openai`` SDK's ``base_url`` is the bridge's root, without ``/v1``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import pytest

REPO = Path(__file__).resolve().parents[2]
BRIDGE_VENV = REPO / ".venv-bridge"
BRIDGE_PYTHON = BRIDGE_VENV / "bin" / "python"
#: The stamp `make` writes once the pinned install succeeded.
BRIDGE_STAMP = BRIDGE_VENV / ".stamp"
BRIDGE_REQUIREMENTS = REPO / "requirements" / "bridge.txt"
BRIDGE_PACKAGE = "open-responses-server"
#: The app its own entry point (``otc start``) runs.
BRIDGE_APP = "open_responses_server.server_entrypoint:app"
_START_TIMEOUT_S = 30.0


def require_bridge() -> None:
    """`make test` installs the bridge (its `unit` target depends on the venv's stamp), so there it never skips; CI
    must never skip it. A bare `pytest` on a machine without the venv says how to get it."""
    if BRIDGE_STAMP.exists():
        return
    message = f"open-responses-server is not installed: run `make {BRIDGE_STAMP.parent.name}/.stamp`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def bridge_version() -> str:
    """The version requirements/bridge.txt pins."""
    for line in BRIDGE_REQUIREMENTS.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == BRIDGE_PACKAGE:
            return version.strip()
    raise AssertionError(f"{BRIDGE_PACKAGE} is not pinned in {BRIDGE_REQUIREMENTS}")


class Bridge:
    """The bridge on a free port of 127.0.0.1, in front of the Chat Completions server at ``backend_url``.

    The port is bound here and handed to uvicorn as a file descriptor (``--fd``), so no other process can take it
    between choosing and listening. The bridge writes ``./log/api_adapter.log`` relative to its working directory,
    which is ``workdir``; its console output goes to ``workdir/bridge.out``.
    """

    def __init__(self, backend_url: str, api_key: str, workdir: Path) -> None:
        self.backend_url = backend_url
        self.api_key = api_key
        self.workdir = workdir
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        path = self.workdir / "bridge.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> Bridge:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        # Only what the bridge reads, set explicitly: its `load_dotenv()` never overrides a variable that is set,
        # and nothing of the caller's OPENAI_* environment can point it elsewhere.
        env = {name: value for name, value in os.environ.items() if not name.startswith(("OPENAI_", "API_ADAPTER_"))}
        env |= {
            "OPENAI_BASE_URL_INTERNAL": self.backend_url,
            "OPENAI_BASE_URL": self.base_url,
            "OPENAI_API_KEY": self.api_key,
            "API_ADAPTER_HOST": "127.0.0.1",
            "API_ADAPTER_PORT": str(self.port),
            "MCP_SERVERS_CONFIG_PATH": str(self.workdir / "no-mcp-servers.json"),
            "PYTHONUNBUFFERED": "1",
        }
        with (self.workdir / "bridge.out").open("wb") as out:
            self._process = subprocess.Popen(
                [str(BRIDGE_PYTHON), "-m", "uvicorn", BRIDGE_APP, "--fd", str(listener.fileno()), "--no-access-log"],
                cwd=self.workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
            )
        listener.close()
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the bridge exited with {self._process.returncode}:\n{self.output}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bridge did not answer /health within {_START_TIMEOUT_S} s:\n{self.output}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
