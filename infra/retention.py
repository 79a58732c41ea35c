"""The stage's plain retention settings as CDK types (``infra.stage`` stays free of aws_cdk)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs

from infra.stage import StageConfig

_RETENTION = {
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def log_retention(stage: StageConfig) -> logs.RetentionDays:
    return _RETENTION[stage.log_retention_days]


def removal_policy(stage: StageConfig) -> cdk.RemovalPolicy:
    return cdk.RemovalPolicy.RETAIN if stage.retain_data else cdk.RemovalPolicy.DESTROY
