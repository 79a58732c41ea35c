"""``python -m scripts.chat``: see :mod:`scripts.chat`."""

from __future__ import annotations

import sys

from scripts.chat.cli import main

if __name__ == "__main__":
    sys.exit(main())
