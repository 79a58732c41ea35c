"""The secret that holds the OpenAI API key.

The stack creates the secret with a random placeholder; ``scripts/set_openai_key.py`` puts the real key in. The key
therefore never appears in code, templates, environment variables or CloudFormation parameters.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.names import openai_secret_name
from infra.retention import removal_policy
from infra.stage import StageConfig


class OpenAiKeySecret(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            secret_name=openai_secret_name(stage.name),
            description=f"OpenAI API key for the {stage.name} assistant; set it with scripts/set_openai_key.py",
            removal_policy=removal_policy(stage),
        )

    def grant_read(self, grantee: iam.IGrantable) -> None:
        # GetSecretValue on this secret only; Secret.grant_read would add DescribeSecret, which no function calls.
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[self.secret.secret_arn])
        )
