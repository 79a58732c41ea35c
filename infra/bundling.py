"""Lambda assets built on this machine, without Docker.

CDK calls :meth:`try_bundle` of an ``ILocalBundling`` before it would fall back to a container; we always bundle
locally, so synth works on a laptop or a CI runner with no Docker daemon. Platform and Python version are parameters
so a test can build the same layers for the host and import the handlers from them.

Lambda's file system is read-only, so CPython cannot cache the bytecode it compiles at cold start; shipping
``__pycache__`` saves that compile on every cold start. Bytecode is only valid for the interpreter version that
wrote it, so we compile only with an interpreter whose ``major.minor`` equals the target's (the bundling interpreter
itself, ``python<major>.<minor>`` on ``PATH``, or ``$LAMBDA_PYC_PYTHON``); with none available the asset ships
sources only and Lambda compiles in memory, which is correct, just slower to start. The ``.pyc`` files use
``unchecked-hash`` invalidation: CDK zips assets with a fixed timestamp, so timestamp-checked ``.pyc`` would never
match their sources and would be ignored.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import jsii

LOG = logging.getLogger(__name__)

#: Lambda layers put ``/opt/python`` on ``sys.path``.
LAYER_PYTHON_DIR = "python"
#: Overrides the interpreter used to precompile bytecode (must match the target's ``major.minor``).
PYC_PYTHON_ENV = "LAMBDA_PYC_PYTHON"
_SKIPPED_NAMES = ("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache", ".ruff_cache")


@dataclass(frozen=True)
class PythonTarget:
    """The interpreter and platform a bundle is built for."""

    #: ``major.minor``, e.g. ``"3.13"``.
    python_version: str
    #: A pip platform tag, e.g. ``"manylinux2014_aarch64"``.
    platform: str

    @classmethod
    def for_host(cls) -> PythonTarget:
        """The running interpreter on this machine: used to import handlers from freshly built layers in tests."""
        import sysconfig

        machine = sysconfig.get_platform().split("-")[-1]
        return cls(
            python_version=f"{sys.version_info.major}.{sys.version_info.minor}", platform=f"manylinux2014_{machine}"
        )


def find_compile_interpreter(python_version: str) -> str | None:
    """An interpreter that writes bytecode valid for ``python_version``, or ``None`` if this machine has none."""
    candidates = [os.environ.get(PYC_PYTHON_ENV), sys.executable, shutil.which(f"python{python_version}")]
    for candidate in candidates:
        if candidate and _interpreter_version(candidate) == python_version:
            return candidate
    return None


def _interpreter_version(executable: str) -> str | None:
    # A version manager's shim can exist on PATH yet fail to run, so ask the interpreter itself.
    try:
        result = subprocess.run(  # noqa: S603 - the candidates are interpreters this machine provides
            [executable, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def precompile(tree: Path, python_version: str) -> bool:
    """Write ``__pycache__`` for every module under ``tree``; return whether it was possible."""
    interpreter = find_compile_interpreter(python_version)
    if interpreter is None:
        LOG.warning("no Python %s interpreter found: %s ships without precompiled bytecode", python_version, tree)
        return False
    subprocess.run(  # noqa: S603 - an interpreter find_compile_interpreter verified
        [interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(tree)],
        check=True,
    )
    return True


def copy_sources(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(*_SKIPPED_NAMES), dirs_exist_ok=True)


@jsii.implements(cdk.ILocalBundling)
class PipLayerBundler:
    """Installs pinned requirements as binary wheels for the target into ``<output>/python``."""

    def __init__(self, requirements: Path, constraints: Path, target: PythonTarget) -> None:
        self._requirements = requirements
        self._constraints = constraints
        self._target = target

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        self.build(Path(output_dir))
        return True

    def build(self, output_dir: Path) -> Path:
        site = output_dir / LAYER_PYTHON_DIR
        subprocess.run(  # noqa: S603 - fixed arguments; pip runs under this interpreter
            [
                sys.executable, "-m", "pip", "install",
                "--quiet", "--disable-pip-version-check", "--no-input",
                # pip would otherwise compile with the *host* interpreter, bytecode the runtime cannot use.
                "--no-compile",
                "--platform", self._target.platform,
                "--only-binary=:all:",
                "--python-version", self._target.python_version,
                "--implementation", "cp",
                "--target", str(site),
                "-r", str(self._requirements),
                "-c", str(self._constraints),
            ],
            check=True,
        )  # fmt: skip
        # Console scripts are useless in a layer and would carry the host's interpreter path in their shebang.
        shutil.rmtree(site / "bin", ignore_errors=True)
        precompile(site, self._target.python_version)
        return site


@jsii.implements(cdk.ILocalBundling)
class SourceBundler:
    """Copies first-party Python sources (a package for a layer, or the handlers) and precompiles them.

    ``prefix`` is where the sources land inside the asset: ``python`` for a layer, empty for function code.
    """

    def __init__(self, source: Path, target: PythonTarget, prefix: str = "") -> None:
        self._source = source
        self._target = target
        self._prefix = prefix

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        self.build(Path(output_dir))
        return True

    def build(self, output_dir: Path) -> Path:
        destination = output_dir / self._prefix if self._prefix else output_dir
        copy_sources(self._source, destination)
        precompile(destination, self._target.python_version)
        return destination
