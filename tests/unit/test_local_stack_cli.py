"""``make dev``'s command line: a busy port is one line saying what to do, not a traceback."""

from __future__ import annotations

import socket

import pytest

from scripts.local_stack.__main__ import _port_in_use, main


def test_a_busy_port_exits_with_one_line_saying_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert _port_in_use("127.0.0.1", port)
        with pytest.raises(SystemExit) as exited:
            main(["--port", str(port)])
    message = str(exited.value.code)
    assert message.count("\n") == 0
    assert f"Port {port} on 127.0.0.1 is already in use" in message
    assert f"make dev PORT={port + 1}" in message
    assert "Traceback" not in capsys.readouterr().err


def test_a_free_port_is_free() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert not _port_in_use("127.0.0.1", port)
    assert not _port_in_use("127.0.0.1", 0)
