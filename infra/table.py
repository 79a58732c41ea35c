"""The single DynamoDB table (keys from ``wiring.TABLE``) and the table permissions a function may get."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from assistant.wiring import TABLE, TableAction
from infra.retention import removal_policy
from infra.stage import StageConfig


class AssistantTable(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=TABLE.partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=TABLE.sort_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TABLE.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=stage.retain_data,
            removal_policy=removal_policy(stage),
        )

    def grant(self, grantee: iam.IGrantable, actions: Iterable[TableAction]) -> None:
        """Exactly ``actions`` (a ``FunctionSpec.table_actions``) on the table itself.

        Item-level actions only, each named: no Scan (every access pattern is a key lookup or a query within a
        user's partition), no batch or table-management actions, and no index ARNs (the table has none).
        """
        granted = sorted({TableAction(action).value for action in actions})
        if not granted:
            raise ValueError("no table actions to grant; a function without table access gets no statement")
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=granted, resources=[self.table.table_arn])
        )
