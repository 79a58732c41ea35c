"""Write docs/protocol.schema.json from the protocol's pydantic models: ``python -m scripts.protocol_schema``.

The models in ``shared/assistant/protocol.py`` are the one source of the protocol; this file is their published form,
for clients in other languages. ``tests/unit/test_protocol_schema.py`` fails when it is stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from assistant.protocol import protocol_json_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "protocol.schema.json"


def render() -> str:
    return json.dumps(protocol_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    SCHEMA_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")


if __name__ == "__main__":
    main()
