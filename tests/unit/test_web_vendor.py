"""The page's libraries in ``web/vendor/`` are exactly what the npm-pinned packages ship (``scripts.web_vendor``)."""

from __future__ import annotations

import json

import pytest

from scripts.web_vendor import FILES, NODE_MODULES, ROOT, VENDOR, stale


def test_every_vendored_library_is_pinned_in_package_json() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]
    for source in FILES.values():
        package = source.split("/")[0]
        assert package in pinned, f"{package} is vendored but not pinned"
        assert pinned[package][0].isdigit(), f"{package} must be pinned to an exact version"


def test_the_vendored_files_are_committed_and_the_page_imports_them() -> None:
    for name in FILES:
        assert (VENDOR / name).is_file(), f"web/vendor/{name} is missing: run python -m scripts.web_vendor"
    page = (ROOT / "web" / "markdown.js").read_text()
    assert "./vendor/marked.esm.js" in page
    assert "./vendor/purify.es.js" in page
    assert "./vendor/amazon-cognito-identity.min.js" in (ROOT / "web" / "cognito-srp.js").read_text()


@pytest.mark.skipif(not (NODE_MODULES / "marked").is_dir(), reason="node_modules not installed (npm ci)")
def test_the_vendored_files_match_the_pinned_packages() -> None:
    assert stale() == [], "web/vendor/ differs from node_modules: run python -m scripts.web_vendor"
