"""Builds the CDK app: the stage from ``--context stage=<name>``, its stack, and the cdk-nag gate."""

from __future__ import annotations

from dataclasses import replace

import aws_cdk as cdk

from infra.nag import acknowledge_accepted_findings, add_checks
from infra.names import DEFAULT_STAGE
from infra.stack import AssistantStack
from infra.stage import StageConfig

STAGE_CONTEXT_KEY = "stage"
MODEL_CONTEXT_KEY = "model"


def stage_from_context(app: cdk.App) -> StageConfig:
    name = app.node.try_get_context(STAGE_CONTEXT_KEY) or DEFAULT_STAGE
    stage = StageConfig.for_stage(str(name))
    model = app.node.try_get_context(MODEL_CONTEXT_KEY)
    return replace(stage, model=str(model)) if model else stage


def build(app: cdk.App) -> AssistantStack:
    stack = AssistantStack(app, stage=stage_from_context(app))
    add_checks(app)
    acknowledge_accepted_findings(stack)
    return stack
