"""The Lambda layers built for this host, which the import benchmarks run from, and the deployed layers' sizes.

The deployed layers are arm64/CPython 3.13 and cannot be imported on an x86 host, so the same bundlers build them
for the host's interpreter and platform (as tests/infra/test_bundling.py does). A measured interpreter gets only the
layers, the handler code and the runtime-provided boto3 on ``sys.path``, and an environment shaped like a deployed
function's (:func:`scripts.local_stack.lambda_runtime.deployed.handler_env`).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from infra.bundling import LAYER_PYTHON_DIR, PipLayerBundler, PythonTarget, SourceBundler
from infra.layers import (
    ASSISTANT_PACKAGE_DIR,
    CONSTRAINTS,
    HANDLERS_DIR,
    LAMBDA_TARGET,
    RUNTIME_NO_DEPS_REQUIREMENTS,
    RUNTIME_REQUIREMENTS,
)
from scripts.local_stack.lambda_runtime.deployed import handler_env, runtime_provided

CACHE_DIR = Path(__file__).resolve().parents[2] / ".build" / "bench"


@dataclass(frozen=True)
class LayerSize:
    name: str
    target: str
    unzipped_bytes: int
    zipped_bytes: int
    files: int


@dataclass(frozen=True)
class HostLayers:
    """The layers built for this host, in the order a deployed function's ``sys.path`` has them."""

    dependencies: Path
    package: Path
    code: Path
    provided: Path

    @property
    def prefix(self) -> str:
        """The first line of every measured program: the layers on ``sys.path`` (``python -I -S`` has none)."""
        path = [str(self.code), str(self.package), str(self.dependencies), str(self.provided)]
        return f"import sys; sys.path[:0] = {path!r}\n"

    @staticmethod
    def env() -> dict[str, str]:
        """A deployed function's environment (placeholder values)."""
        return handler_env()


def _fingerprint(target: PythonTarget) -> str:
    digest = hashlib.sha256()
    for path in (RUNTIME_REQUIREMENTS, RUNTIME_NO_DEPS_REQUIREMENTS, CONSTRAINTS):
        digest.update(path.read_bytes())
    digest.update(f"{target.python_version}/{target.platform}".encode())
    return digest.hexdigest()[:16]


def build_dependencies(target: PythonTarget) -> Path:
    """The dependency layer for ``target``, cached by the requirements' hash (pip is the slow part)."""
    out = CACHE_DIR / f"deps-{target.platform}-{target.python_version}-{_fingerprint(target)}"
    site = out / LAYER_PYTHON_DIR
    if not (out / ".complete").exists():
        PipLayerBundler(RUNTIME_REQUIREMENTS, CONSTRAINTS, target, no_deps=RUNTIME_NO_DEPS_REQUIREMENTS).build(out)
        (out / ".complete").touch()
    return site


def build_first_party(target: PythonTarget, into: Path) -> tuple[Path, Path]:
    """The assistant package layer and the handlers' code (always rebuilt: they change with every commit)."""
    package = SourceBundler(ASSISTANT_PACKAGE_DIR, target, f"{LAYER_PYTHON_DIR}/assistant").build(into / "pkg")
    code = SourceBundler(HANDLERS_DIR, target).build(into / "code")
    return package.parent, code


def host_layers(work_dir: Path) -> HostLayers:
    """Build (or reuse) the layers for this host's interpreter under ``work_dir``."""
    host = PythonTarget.for_host()
    package, code = build_first_party(host, work_dir)
    return HostLayers(build_dependencies(host), package, code, runtime_provided(work_dir))


def _directory_size(root: Path) -> tuple[int, int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    unzipped = sum(p.stat().st_size for p in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            archive.write(path, path.relative_to(root.parent))
    return unzipped, len(buffer.getvalue()), len(files)


def layer_sizes(host: HostLayers, work_dir: Path, *, lambda_target: bool) -> tuple[LayerSize, ...]:
    """The layers' sizes: those built for the real Lambda target when ``lambda_target`` and that build is possible
    (pip needs the network), else the host's (the table names which)."""
    layers = [("dependencies", host.dependencies), ("assistant package", host.package), ("handler code", host.code)]
    host_target = PythonTarget.for_host()
    target_name = f"{host_target.platform}, CPython {host_target.python_version}"
    if lambda_target:
        try:
            lambda_deps = build_dependencies(LAMBDA_TARGET)
            lambda_package, lambda_code = build_first_party(LAMBDA_TARGET, work_dir / "lambda")
            layers = [
                ("dependencies", lambda_deps),
                ("assistant package", lambda_package),
                ("handler code", lambda_code),
            ]
            target_name = f"{LAMBDA_TARGET.platform}, CPython {LAMBDA_TARGET.python_version} (deployed)"
        except (subprocess.CalledProcessError, OSError):
            pass  # no network for pip: report the host build's sizes, which the table says
    sizes = []
    for name, root in layers:
        unzipped, zipped, files = _directory_size(root)
        sizes.append(LayerSize(name, target_name, unzipped_bytes=unzipped, zipped_bytes=zipped, files=files))
    return tuple(sizes)
