"""Lambda assets built on this machine, without Docker.

CDK calls :meth:`try_bundle` of an ``ILocalBundling`` before it would fall back to a container; we always bundle
locally, so synth works on a laptop or a CI runner with no Docker daemon. Platform and Python version are parameters
so a test can build the same layers for the host and import the handlers from them.

Lambda's file system is read-only, so CPython cannot cache the bytecode it compiles at cold start: without
``__pycache__`` in the asset, every cold start compiles every module it imports again. Bytecode is only valid for the
interpreter version that wrote it, so the Lambda target's (CPython 3.13) is written by Pyodide, CPython 3.13 compiled
to WebAssembly, which Node runs offline from ``node_modules`` (``infra/compile_bytecode.mjs``): every machine that
synthesizes writes the same bytecode, whatever Python it has. A build for the host (tests import handlers from
host-built layers) is compiled by the running interpreter; any other version is an error, never an asset without
bytecode. The ``.pyc`` files use ``unchecked-hash`` invalidation: CDK zips assets with a fixed timestamp, so
timestamp-checked ``.pyc`` would never match their sources and would be ignored.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import jsii

#: Lambda layers put ``/opt/python`` on ``sys.path``.
LAYER_PYTHON_DIR = "python"
#: Compiles bytecode with Pyodide (``pyodide`` in ``package.json``, pinned exactly: its Python version is this).
COMPILE_BYTECODE_SCRIPT = Path(__file__).with_name("compile_bytecode.mjs")
PYODIDE_PYTHON_VERSION = "3.13"
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


def precompile(tree: Path, python_version: str) -> None:
    """Write unchecked-hash ``__pycache__`` for every module under ``tree``, valid for Python ``python_version``."""
    if python_version == PYODIDE_PYTHON_VERSION:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError(f"Node is needed to compile Python {python_version} bytecode with Pyodide: install it")
        command = [node, str(COMPILE_BYTECODE_SCRIPT), python_version, str(tree)]
    elif python_version == f"{sys.version_info.major}.{sys.version_info.minor}":
        command = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
        command += ["-s", str(tree), str(tree)]
    else:
        raise RuntimeError(
            f"cannot compile bytecode for Python {python_version}: only Pyodide's {PYODIDE_PYTHON_VERSION} or this"
            f" interpreter's {sys.version_info.major}.{sys.version_info.minor} can"
        )
    subprocess.run(command, check=True)  # noqa: S603 - fixed arguments, an interpreter we chose


def copy_sources(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(*_SKIPPED_NAMES), dirs_exist_ok=True)


@jsii.implements(cdk.ILocalBundling)
class PipLayerBundler:
    """Installs pinned requirements as binary wheels for the target into ``<output>/python``."""

    def __init__(
        self, requirements: Path, constraints: Path, target: PythonTarget, no_deps: Path | None = None
    ) -> None:
        self._requirements = requirements
        self._constraints = constraints
        self._target = target
        #: Requirements installed without their dependencies (those whose only other one is the runtime's boto3).
        self._no_deps = no_deps

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        self.build(Path(output_dir))
        return True

    def build(self, output_dir: Path) -> Path:
        site = output_dir / LAYER_PYTHON_DIR
        self._pip_install(site, "-r", str(self._requirements))
        if self._no_deps is not None:
            self._pip_install(site, "--no-deps", "-r", str(self._no_deps))
        # Console scripts are useless in a layer and would carry the host's interpreter path in their shebang.
        shutil.rmtree(site / "bin", ignore_errors=True)
        precompile(site, self._target.python_version)
        return site

    def _pip_install(self, site: Path, *requirements: str) -> None:
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
                *requirements,
                "-c", str(self._constraints),
            ],
            check=True,
        )  # fmt: skip


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
