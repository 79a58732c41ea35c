"""Write docs/settings.md from the one declaration of every setting: ``python -m scripts.settings_doc``.

``assistant.environment.SETTINGS`` is the source; this file is its published form, for operators choosing a stage's
values. ``tests/unit/test_settings_doc.py`` fails when it is stale, and when docs/protocol.md's limits table names a
default the declaration does not have.
"""

from __future__ import annotations

from pathlib import Path

from assistant.environment import SETTINGS, Setting

SETTINGS_FILE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"

_HEADER = """# Settings

Generated from `shared/assistant/environment.py` (`SETTINGS`) by `.venv/bin/python -m scripts.settings_doc`; do not
edit by hand. Each environment variable a function reads is declared there once: its bounds, its default, which
functions get it, and whether a stage may set it.

- **Stage settings** are fields of `StageConfig` (`infra/stage.py`, under the same name in lower case) and are
  checked at `cdk synth` by the same parser the functions use, so a value a function would refuse stops the synth,
  naming the setting. `make dev` reads them from its environment (`RATE_LIMIT_SEND_MESSAGE=100/600 make dev`).
- **Wired** settings are set by the stack (names and addresses of the stage's resources) and by the local stack.
- **Optional** settings may be unset; the function then uses the provider's or the package's default.

"""


def _row(setting: Setting) -> str:
    if setting.stage:
        role = f"stage: `{setting.field}`"
    elif setting.optional:
        role = "optional"
    else:
        role = "wired"
    default = "" if setting.default is None else f"`{setting.default}`"
    functions = ", ".join(setting.functions)
    doc = setting.doc.replace("``", "`")
    return f"| `{setting.env.value}` | {role} | {setting.bounds} | {default} | {functions} | {doc} |"


def render() -> str:
    lines = [
        "| variable | set by | accepts | default | functions | what it is |",
        "|---|---|---|---|---|---|",
        *(_row(setting) for setting in SETTINGS.values()),
    ]
    return _HEADER + "\n".join(lines) + "\n"


def main() -> None:
    SETTINGS_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {SETTINGS_FILE}")


if __name__ == "__main__":
    main()
