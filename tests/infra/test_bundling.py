"""The real app with real layer bundling: do the layers hold everything the handlers import?

The deployed layers are arm64/CPython 3.13 and cannot be imported on this host, so the test checks them twice:
statically (every import of every handler and of the assistant package resolves to the bundled layers, the stdlib
or the runtime's boto3), and dynamically (the same bundlers build the layers for this host, and a fresh isolated
interpreter imports every handler from those layers alone). Every module of every deployed asset also ships
unchecked-hash bytecode for CPython 3.13, since Lambda cannot write its own.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.wiring import FUNCTIONS
from infra.bundling import LAYER_PYTHON_DIR, PipLayerBundler, PythonTarget, SourceBundler
from infra.layers import (
    ASSISTANT_PACKAGE_DIR,
    CONSTRAINTS,
    HANDLERS_DIR,
    RUNTIME_NO_DEPS_REQUIREMENTS,
    RUNTIME_REQUIREMENTS,
)
from scripts.local_stack.lambda_runtime.deployed import handler_env, runtime_provided
from tests.infra.conftest import synth_app

pytestmark = pytest.mark.bundling

#: Provided by the Lambda Python runtime, deliberately not bundled (``snapshot_restore_py``: SnapStart's runtime hooks,
#: which the worker imports only when initialized for a snapshot).
RUNTIME_PROVIDED = {"boto3", "botocore", "snapshot_restore_py"}
#: ``importlib.util.MAGIC_NUMBER`` of CPython 3.13 (3571), the Lambda runtime's interpreter.
CPYTHON_313_MAGIC = (3571).to_bytes(2, "little") + b"\r\n"
#: PEP 552 flags word: hash-based (bit 0) and not checked against the source (bit 1 clear).
UNCHECKED_HASH_FLAGS = 0b01


@pytest.fixture(scope="module")
def bundled_assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Lambda assets of the real app synthesized with bundling, by logical id: once, bundling is slow."""
    outdir = tmp_path_factory.mktemp("bundled")
    _, stack = synth_app(outdir, "dev", bundling=True)
    return _asset_dirs(outdir, stack.template_file)


def _handler_modules() -> list[str]:
    modules = sorted({spec.handler.split(".")[0] for spec in FUNCTIONS})
    missing = [m for m in modules if not (HANDLERS_DIR / f"{m}.py").exists()]
    if missing:
        pytest.skip(f"lambdas/{missing[0]}.py missing")
    return modules


def _runtime_imports(path: Path) -> set[str]:
    """Top-level names of absolute imports that execute at runtime (not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _importable_names(site: Path) -> set[str]:
    names = set()
    for entry in site.iterdir():
        if entry.is_dir() and not entry.name.endswith((".dist-info", ".data")) and entry.name != "__pycache__":
            names.add(entry.name)
        elif entry.suffix in {".py", ".so"}:
            names.add(entry.name.split(".")[0])
    return names


def _asset_dirs(outdir: Path, stack_template: str) -> dict[str, Path]:
    template = json.loads((outdir / stack_template).read_text())
    dirs: dict[str, Path] = {}
    for logical_id, resource in template["Resources"].items():
        asset = resource.get("Metadata", {}).get("aws:asset:path")
        # Not the function and AWS CLI layer CDK's BucketDeployment brings to copy the web page (aws-cdk-lib's code).
        cdk_own = logical_id.startswith("CustomCDKBucketDeployment") or "AwsCliLayer" in logical_id
        if asset and resource["Type"] in ("AWS::Lambda::LayerVersion", "AWS::Lambda::Function") and not cdk_own:
            dirs[logical_id] = outdir / asset
    return dirs


def test_bundled_layers_resolve_every_import_of_handlers_and_package(bundled_assets: dict[str, Path]) -> None:
    modules = _handler_modules()
    assets = bundled_assets
    layers = [d for logical_id, d in assets.items() if logical_id.startswith("LayersDependencies")]
    package = [d for logical_id, d in assets.items() if logical_id.startswith("LayersAssistantPackage")]
    code_dirs = {d for logical_id, d in assets.items() if logical_id.startswith("Functions")}
    assert len(layers) == 1
    assert len(package) == 1
    assert len(code_dirs) == 1
    deps_site, package_site, code = layers[0] / LAYER_PYTHON_DIR, package[0] / LAYER_PYTHON_DIR, code_dirs.pop()

    # The deployed layer is built for the Lambda target, not for this host.
    assert list(deps_site.glob("pydantic_core/*.cpython-313-aarch64-linux-gnu.so"))
    assert not (deps_site / "boto3").exists()
    # The X-Ray SDK is bundled for the Tracer, without a second botocore shadowing the runtime's.
    assert (deps_site / "aws_xray_sdk").exists()
    assert not (deps_site / "botocore").exists()
    assert (package_site / "assistant" / "wiring.py").exists()
    assert {f"{m}.py" for m in modules} <= {p.name for p in code.glob("*.py")}

    available = (
        _importable_names(deps_site)
        | _importable_names(package_site)
        | {p.stem for p in code.glob("*.py")}
        | set(sys.stdlib_module_names)
        | RUNTIME_PROVIDED
    )
    sources = [*code.glob("*.py"), *(package_site / "assistant").rglob("*.py")]
    unresolved = {
        f"{source.relative_to(source.parents[1])}: {name}"
        for source in sources
        for name in _runtime_imports(source)
        if name not in available
    }
    assert unresolved == set()


def test_every_module_of_every_asset_ships_unchecked_bytecode_for_cpython_313(
    bundled_assets: dict[str, Path],
) -> None:
    sources = [source for asset in bundled_assets.values() for source in asset.rglob("*.py")]
    assert len(sources) > 1000  # the dependency layer is among the assets
    headers = {}
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        headers[source] = pyc.read_bytes()[:8] if pyc.exists() else b"missing"
    expected = CPYTHON_313_MAGIC + UNCHECKED_HASH_FLAGS.to_bytes(4, "little")
    wrong = {str(source): header for source, header in headers.items() if header != expected}
    assert wrong == {}


def test_handlers_import_from_the_layers_alone_on_this_host(tmp_path: Path) -> None:
    modules = _handler_modules()
    host = PythonTarget.for_host()
    deps = PipLayerBundler(RUNTIME_REQUIREMENTS, CONSTRAINTS, host, no_deps=RUNTIME_NO_DEPS_REQUIREMENTS).build(
        tmp_path / "deps"
    )
    package = SourceBundler(ASSISTANT_PACKAGE_DIR, host, f"{LAYER_PYTHON_DIR}/assistant").build(tmp_path / "pkg")
    code = SourceBundler(HANDLERS_DIR, host).build(tmp_path / "code")
    # The host interpreter is the bundling interpreter, so this build must carry precompiled bytecode.
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    assert list((package / "__pycache__").glob(f"wiring.{tag}.pyc"))
    assert list((code / "__pycache__").glob(f"worker.{tag}.pyc"))

    path = [str(code), str(package.parent), str(deps), str(runtime_provided(tmp_path))]
    script = (
        f"import sys; sys.path[:0] = {path!r}\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"assert all(getattr(sys.modules[m], 'handler', None) for m in {modules!r})\n"
        # A sampled invocation in Lambda builds the Tracer: the X-Ray SDK and its botocore patch, from the layers.
        + "import os\n"
        + "os.environ.update(LAMBDA_TASK_ROOT='/var/task', _X_AMZN_TRACE_ID='Root=1-5759e988-bd862e3fe1be46a994272793;"
        + "Parent=53995c3f42cd8ad8;Sampled=1')\n"
        + "from assistant import tracing\n"
        + "assert tracing.enabled() and not tracing.tracer().disabled\n"
    )
    env = handler_env()
    # -I ignores PYTHON* variables and the user site; -S drops site-packages, so only the layers are importable.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
