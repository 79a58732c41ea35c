"""Synthesized templates shared by the infrastructure tests.

Unit tests skip asset bundling (the ``aws:cdk:bundling-stacks`` context set to no stacks), so a synth takes seconds
and needs no pip; ``test_bundling.py`` synthesizes with bundling, the way ``cdk synth`` and ``cdk deploy`` do.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.application import build
from infra.stack import AssistantStack

SKIP_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}
REPO_ROOT = Path(__file__).resolve().parents[2]


def synth_app(outdir: Path, stage: str, *, bundling: bool = False) -> tuple[cdk.App, AssistantStack]:
    context: dict[str, Any] = {"stage": stage, "aws:cdk:enable-asset-metadata": True}
    if not bundling:
        context.update(SKIP_BUNDLING)
    app = cdk.App(outdir=str(outdir), context=context)
    stack = build(app)
    app.synth()
    return app, stack


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> tuple[AssistantStack, Template]:
    _, stack = synth_app(tmp_path_factory.mktemp("dev"), "dev")
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> tuple[AssistantStack, Template]:
    _, stack = synth_app(tmp_path_factory.mktemp("prod"), "prod")
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="session")
def dev_template(dev: tuple[AssistantStack, Template]) -> Template:
    return dev[1]


@pytest.fixture(scope="session")
def prod_template(prod: tuple[AssistantStack, Template]) -> Template:
    return prod[1]


def resources(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = template.find_resources(resource_type)
    return found


def only(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    found = resources(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def function_by_handler(template: Template, handler: str) -> tuple[str, dict[str, Any]]:
    matches = [
        (logical_id, resource)
        for logical_id, resource in resources(template, "AWS::Lambda::Function").items()
        if resource["Properties"]["Handler"] == handler
    ]
    assert len(matches) == 1, f"expected one function with handler {handler}, found {len(matches)}"
    return matches[0]


def role_statements(template: Template, handler: str) -> list[dict[str, Any]]:
    """Every IAM statement of the role of the function with ``handler``."""
    _, function = function_by_handler(template, handler)
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def assert_cfn_lint_clean(template_file: Path) -> None:
    """cfn-lint on a synthesized template, with the repository's .cfnlintrc.yaml."""
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", str(template_file)],
        cwd=REPO_ROOT,  # picks up .cfnlintrc.yaml
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
