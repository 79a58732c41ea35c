"""`python -m scripts.try_assistant --offline`: the assistant definition tried in a terminal with no AWS at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_offline_run_streams_a_reply_that_used_the_calculate_tool() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "scripts.try_assistant", "--offline", "-m", "Please calculate 12*7"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "calculate" in result.stdout
    assert "84" in result.stdout
