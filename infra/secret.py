"""The secret that holds the OpenAI API key.

The stack creates the secret *without a value*; ``scripts/set_openai_key.py`` puts the real key in. The key therefore
never appears in code, templates, environment variables or CloudFormation parameters, and until it is set the
functions can tell "never configured" (no current version: ``model_not_configured`` for the user, the fixing
command in the log) from an outage. CDK's ``Secret`` always generates a random value, which would look like a key,
so this uses the CloudFormation resource directly.
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
        self.secret = secretsmanager.CfnSecret(
            self,
            "Secret",
            name=openai_secret_name(stage.name),
            description=f"OpenAI API key for the {stage.name} assistant; set it with scripts/set_openai_key.py",
        )
        self.secret.apply_removal_policy(removal_policy(stage))
        #: ``Ref`` of a secret is its ARN.
        self.secret_arn = self.secret.ref

    def grant_read(self, grantee: iam.IGrantable) -> None:
        # GetSecretValue on this secret only; Secret.grant_read would add DescribeSecret, which no function calls.
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[self.secret_arn])
        )
