"""docs/settings.md is generated from the one declaration of every setting, and the limits table in
docs/protocol.md names the defaults that declaration has."""

from __future__ import annotations

import re
from pathlib import Path

from assistant.environment import SETTINGS, STAGE_SETTINGS, Env
from scripts.settings_doc import SETTINGS_FILE, render

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_the_settings_doc_is_generated_from_the_declarations() -> None:
    assert SETTINGS_FILE.read_text(encoding="utf-8") == render(), (
        "docs/settings.md is stale: run `.venv/bin/python -m scripts.settings_doc`"
    )


def test_the_protocol_docs_limits_table_names_each_declared_default() -> None:
    rows = [line for line in PROTOCOL_DOC.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    named = dict(re.findall(r"`([A-Z_]+)=\"?([^\"`]+)\"?`", "\n".join(rows)))
    documented = {env: named[env.value] for env in (s.env for s in STAGE_SETTINGS) if env.value in named}
    # Every per-user limit of the protocol is in the table (the streaming ones are documented with the frames).
    assert {s.env for s in STAGE_SETTINGS if s.env.name.startswith("RATE_LIMIT_")} <= set(documented)
    for env, value in documented.items():
        assert value == SETTINGS[Env(env)].default, f"docs/protocol.md says {env}={value}"
