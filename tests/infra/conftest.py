"""Synthesized templates shared by the infrastructure tests.

Unit tests skip asset bundling (the ``aws:cdk:bundling-stacks`` context set to no stacks), so a synth takes seconds
and needs no pip; ``test_bundling.py`` synthesizes with bundling, the way ``cdk synth`` and ``cdk deploy`` do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.application import build
from infra.stack import AssistantStack

SKIP_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}


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
