"""The Lambda assets built for this machine's architecture and the runtime's Python (3.13), with the same pins and
the same bundlers as the deployed ones (``infra.bundling``), so a test can run each function from its own assets.

The deployed layers are arm64; a host build differs only in the platform tag of the binary wheels. Builds are cached
under ``.build/lambda-host/`` by a hash of their inputs, so ``make test`` builds the dependency layer once per change
of ``requirements/`` (``python -m tests.infra.host_assets`` builds them ahead, as ``make test`` does) and the package
and handler assets once per code change.

The interpreter is CPython 3.13, the runtime's: ``LAMBDA_PYTHON`` if set, else ``python3.13`` on the ``PATH``, else
pyenv's (``$PYENV_ROOT/versions/3.13.*``).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from infra.bundling import LAYER_PYTHON_DIR, PipLayerBundler, PythonTarget, SourceBundler
from infra.layers import (
    ASSISTANT_PACKAGE_DIR,
    CONSTRAINTS,
    HANDLERS_DIR,
    LAMBDA_TARGET,
    RUNTIME_NO_DEPS_REQUIREMENTS,
    RUNTIME_REQUIREMENTS,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = REPO_ROOT / ".build" / "lambda-host"
#: The runtime's Python, on this machine's architecture.
HOST_TARGET = PythonTarget(
    python_version=LAMBDA_TARGET.python_version, platform=f"manylinux2014_{sysconfig.get_platform().split('-')[-1]}"
)


class Builder(Protocol):
    def build(self, output_dir: Path) -> Path: ...


@dataclass(frozen=True)
class HostAssets:
    #: The dependency layer's ``/opt/python``.
    dependencies: Path
    #: The assistant package layer's ``/opt/python``.
    package: Path
    #: The function code (``/var/task``).
    handlers: Path


def lambda_python() -> Path | None:
    """CPython ``3.13`` on this machine, or ``None``."""
    version = HOST_TARGET.python_version
    candidates = [os.environ.get("LAMBDA_PYTHON"), shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            probe = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.stdout.strip() == version:
                return Path(candidate)
    return None


def _digest(*sources: Path) -> str:
    digest = hashlib.sha256(repr(HOST_TARGET).encode())
    for source in sources:
        files = sorted(source.rglob("*")) if source.is_dir() else [source]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(source.parent)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cached(kind: str, key: str, build: Builder) -> Path:
    """``build(output_dir)`` once per ``key``; built into a temporary directory and renamed, so a build that fails
    or is interrupted never leaves a directory that looks done."""
    done = CACHE_ROOT / f"{kind}-{key}"
    if not done.exists():
        CACHE_ROOT.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=CACHE_ROOT))
        try:
            build.build(staging)
            staging.rename(done)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        for stale in CACHE_ROOT.glob(f"{kind}-*"):  # earlier builds of the same asset
            if stale != done:
                shutil.rmtree(stale, ignore_errors=True)
    return done


def build() -> HostAssets:
    dependencies = _cached(
        "dependencies",
        _digest(RUNTIME_REQUIREMENTS, RUNTIME_NO_DEPS_REQUIREMENTS, CONSTRAINTS),
        PipLayerBundler(RUNTIME_REQUIREMENTS, CONSTRAINTS, HOST_TARGET, no_deps=RUNTIME_NO_DEPS_REQUIREMENTS),
    )
    package = _cached(
        "package",
        _digest(ASSISTANT_PACKAGE_DIR),
        SourceBundler(ASSISTANT_PACKAGE_DIR, HOST_TARGET, f"{LAYER_PYTHON_DIR}/assistant"),
    )
    handlers = _cached("handlers", _digest(HANDLERS_DIR), SourceBundler(HANDLERS_DIR, HOST_TARGET))
    return HostAssets(
        dependencies=dependencies / LAYER_PYTHON_DIR, package=package / LAYER_PYTHON_DIR, handlers=handlers
    )


if __name__ == "__main__":
    assets = build()
    print(f"Lambda assets for this host (Python {HOST_TARGET.python_version}, {HOST_TARGET.platform}): {assets}")
    if lambda_python() is None:
        print(
            f"WARNING: no CPython {HOST_TARGET.python_version} found (pyenv install 3.13, or LAMBDA_PYTHON)",
            file=sys.stderr,
        )
