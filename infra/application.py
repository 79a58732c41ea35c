"""Builds the CDK app: the stage from ``--context stage=<name>``, its stack, and the cdk-nag gate."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import aws_cdk as cdk

from assistant.wiring import ModelProvider
from infra.nag import acknowledge_accepted_findings, add_checks
from infra.names import DEFAULT_STAGE
from infra.stack import AssistantStack
from infra.stage import StageConfig

STAGE_CONTEXT_KEY = "stage"
MODEL_CONTEXT_KEY = "model"
#: ``--context provider=openai-compatible``: the stage's model server is stateless (docs/providers.md).
PROVIDER_CONTEXT_KEY = "provider"
#: ``--context assistantFile=path/to/assistant.toml`` deploys that definition instead of the packaged one.
ASSISTANT_FILE_CONTEXT_KEY = "assistantFile"
#: ``--context alarmEmail=ops@example.com`` subscribes that address to the stage's alarm topic.
ALARM_EMAIL_CONTEXT_KEY = "alarmEmail"
#: ``--context snapStart=true|false`` turns the worker's SnapStart on or off whatever the stage's default
#: (``StageConfig.worker_snap_start``: on for ``prod`` only).
SNAP_START_CONTEXT_KEY = "snapStart"
#: ``--context threatProtection=true|false``: Cognito threat protection (Plus feature plan, billed per monthly active
#: user) whatever the stage's default (``StageConfig.threat_protection``: on for ``prod`` only).
THREAT_PROTECTION_CONTEXT_KEY = "threatProtection"
#: ``--context retentionDays=30``: the stage's ``retention_days`` (conversations kept 30 days after their last use;
#: ``0``: until deleted). See docs/deploy.md, "Your users' data".
RETENTION_DAYS_CONTEXT_KEY = "retentionDays"


def stage_from_context(app: cdk.App) -> StageConfig:
    name = app.node.try_get_context(STAGE_CONTEXT_KEY) or DEFAULT_STAGE
    stage = StageConfig.for_stage(str(name))
    model = app.node.try_get_context(MODEL_CONTEXT_KEY)
    if model:
        stage = replace(stage, model=str(model))
    provider = app.node.try_get_context(PROVIDER_CONTEXT_KEY)
    if provider:
        stage = replace(stage, model_provider=ModelProvider(str(provider)))
    assistant_file = app.node.try_get_context(ASSISTANT_FILE_CONTEXT_KEY)
    if assistant_file:
        stage = replace(stage, assistant_file=Path(str(assistant_file)))
    alarm_email = app.node.try_get_context(ALARM_EMAIL_CONTEXT_KEY)
    if alarm_email:
        stage = replace(stage, alarm_email=str(alarm_email).strip())
    snap_start = app.node.try_get_context(SNAP_START_CONTEXT_KEY)
    if snap_start is not None:
        stage = replace(stage, worker_snap_start=_context_flag(SNAP_START_CONTEXT_KEY, snap_start))
    threat_protection = app.node.try_get_context(THREAT_PROTECTION_CONTEXT_KEY)
    if threat_protection is not None:
        stage = replace(stage, threat_protection=_context_flag(THREAT_PROTECTION_CONTEXT_KEY, threat_protection))
    retention_days = app.node.try_get_context(RETENTION_DAYS_CONTEXT_KEY)
    if retention_days is not None:
        try:
            # A stage setting: a field generated from assistant.environment.SETTINGS, which a type checker cannot see.
            stage = replace(cast(Any, stage), retention_days=int(str(retention_days).strip()))
        except ValueError as exc:
            raise ValueError(f"--context {RETENTION_DAYS_CONTEXT_KEY} must be a whole number of days: {exc}") from None
    return stage


def _context_flag(key: str, value: object) -> bool:
    """``true``/``false`` from the command line (a string) or from cdk.json (a JSON boolean); anything else stops
    the synth, so a typo (``--context snapStart=ture``) never silently deploys the stage's default."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(f"--context {key} must be true or false, got {value!r}")


def build(app: cdk.App) -> AssistantStack:
    stack = AssistantStack(app, stage=stage_from_context(app))
    add_checks(app)
    acknowledge_accepted_findings(stack)
    return stack
