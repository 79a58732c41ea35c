"""The single DynamoDB table (keys from ``wiring.TABLE``) and the table permissions a function may get."""

from __future__ import annotations

from typing import Final

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from assistant.wiring import TABLE
from infra.retention import removal_policy
from infra.stage import StageConfig

#: Item-level actions only: no Scan (every access pattern is a key lookup or a query within a user's partition) and
#: no table-management actions. Transactions are authorized through these same item actions.
READ_ACTIONS: Final = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
WRITE_ACTIONS: Final = (
    *READ_ACTIONS,
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
ACCESS_ACTIONS: Final = {"read": READ_ACTIONS, "write": WRITE_ACTIONS}


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

    def grant(self, grantee: iam.IGrantable, access: str) -> None:
        """``access`` is a ``FunctionSpec.table_access`` value."""
        if access not in ACCESS_ACTIONS:
            raise ValueError(f"unknown table access {access!r}; expected one of {sorted(ACCESS_ACTIONS)}")
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(ACCESS_ACTIONS[access]), resources=[self.table.table_arn])
        )
