"""The two Lambda layers: third-party dependencies, and the ``assistant`` package the handlers share.

Two layers rather than one because they change at different rates: the dependency layer is rebuilt only when
``requirements/`` changes, the package layer on every code change, and each is cached by its own hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bundling import LAYER_PYTHON_DIR, PipLayerBundler, PythonTarget, SourceBundler

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS_DIR = REPO_ROOT / "requirements"
RUNTIME_REQUIREMENTS = REQUIREMENTS_DIR / "runtime.txt"
#: Installed without dependencies: packages whose other dependency is the runtime's boto3 (the X-Ray SDK).
RUNTIME_NO_DEPS_REQUIREMENTS = REQUIREMENTS_DIR / "runtime-no-deps.txt"
CONSTRAINTS = REQUIREMENTS_DIR / "constraints.txt"
ASSISTANT_PACKAGE_DIR = REPO_ROOT / "shared" / "assistant"
HANDLERS_DIR = REPO_ROOT / "lambdas"

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
#: What the layers are built for; must agree with ``RUNTIME`` and ``ARCHITECTURE``.
LAMBDA_TARGET = PythonTarget(python_version="3.13", platform="manylinux2014_aarch64")


def _bundling(local: PipLayerBundler | SourceBundler) -> cdk.BundlingOptions:
    # The image is required by the API but never pulled: the local bundler always succeeds or raises.
    # jsii calls try_bundle(output_dir, options) with the options as one struct, while the generated typing stub
    # spells them out as keywords, so the bundlers match the runtime call and are cast for the type checker.
    return cdk.BundlingOptions(image=RUNTIME.bundling_image, local=cast(cdk.ILocalBundling, local), command=["false"])


def handlers_code(target: PythonTarget = LAMBDA_TARGET) -> lambda_.Code:
    """The ``lambdas/`` directory as function code, precompiled like the layers."""
    return lambda_.Code.from_asset(str(HANDLERS_DIR), bundling=_bundling(SourceBundler(HANDLERS_DIR, target)))


class Layers(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, target: PythonTarget = LAMBDA_TARGET) -> None:
        super().__init__(scope, construct_id)
        self.dependencies = lambda_.LayerVersion(
            self,
            "Dependencies",
            description="Third-party packages from requirements/runtime.txt (boto3 comes with the runtime)",
            code=lambda_.Code.from_asset(
                str(REQUIREMENTS_DIR),
                # Only the files pip reads take part in the asset's hash, so dev-only pins do not rebuild it.
                exclude=[
                    "*",
                    f"!{RUNTIME_REQUIREMENTS.name}",
                    f"!{RUNTIME_NO_DEPS_REQUIREMENTS.name}",
                    f"!{CONSTRAINTS.name}",
                ],
                bundling=_bundling(
                    PipLayerBundler(RUNTIME_REQUIREMENTS, CONSTRAINTS, target, no_deps=RUNTIME_NO_DEPS_REQUIREMENTS)
                ),
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
        )
        self.assistant = lambda_.LayerVersion(
            self,
            "AssistantPackage",
            description="The assistant package shared by the handlers",
            code=lambda_.Code.from_asset(
                str(ASSISTANT_PACKAGE_DIR),
                bundling=_bundling(SourceBundler(ASSISTANT_PACKAGE_DIR, target, f"{LAYER_PYTHON_DIR}/assistant")),
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.dependencies, self.assistant]
