"""Copy the web page's libraries from ``node_modules/`` into ``web/vendor/``: ``python -m scripts.web_vendor``.

The page has no build step: its libraries are pinned through npm (``package.json``, ``package-lock.json``) and their
browser builds are committed under ``web/vendor/``, so a fresh clone serves a working page and a user never runs
this. Run it after changing a version in ``package.json`` (and ``npm ci``); ``tests/unit/test_web_vendor.py`` fails
while ``web/vendor/`` differs from what the pinned packages ship.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
VENDOR = ROOT / "web" / "vendor"

#: ``web/vendor/<name>`` <- ``node_modules/<path>``: ES-module builds the page imports, and their licences. Named
#: ``.js``, not ``.mjs``: every static host (aiohttp, S3 via the deployment's MIME table) serves that as JavaScript,
#: which a module script must be. amazon-cognito-identity-js ships no ES module for browsers: its UMD build, imported
#: for its effect, sets ``self.AmazonCognitoIdentity`` (web/cognito-srp.js), and needs no eval under the page's CSP.
FILES: dict[str, str] = {
    "marked.esm.js": "marked/lib/marked.esm.js",
    "marked.LICENSE": "marked/LICENSE",
    "purify.es.js": "dompurify/dist/purify.es.mjs",
    "purify.LICENSE": "dompurify/LICENSE",
    "amazon-cognito-identity.min.js": "amazon-cognito-identity-js/dist/amazon-cognito-identity.min.js",
    "amazon-cognito-identity.LICENSE": "amazon-cognito-identity-js/LICENSE.txt",
    "amazon-cognito-identity.NOTICE": "amazon-cognito-identity-js/NOTICE.txt",
}


def stale(node_modules: Path = NODE_MODULES, vendor: Path = VENDOR) -> list[str]:
    """The vendored files that are missing or differ from the installed packages."""
    return [
        name
        for name, source in FILES.items()
        if not (vendor / name).is_file() or (vendor / name).read_bytes() != (node_modules / source).read_bytes()
    ]


def copy(node_modules: Path = NODE_MODULES, vendor: Path = VENDOR) -> list[str]:
    vendor.mkdir(parents=True, exist_ok=True)
    for name, source in FILES.items():
        shutil.copyfile(node_modules / source, vendor / name)
    return list(FILES)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that differ (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        differing = stale()
        for name in differing:
            print(f"web/vendor/{name} differs from node_modules/{FILES[name]}", file=sys.stderr)
        return 1 if differing else 0
    for name in copy():
        print(f"web/vendor/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
