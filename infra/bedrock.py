"""What a function needs to call a Bedrock model with keys it mints itself (``bedrock`` and ``bedrock-mantle``).

A short-term Bedrock API key carries the permissions of the role that signed it, so the role needs two things:
to call Bedrock with a bearer token at all, and the inference actions on the stage's model, nothing else.

``bedrock`` (``bedrock-runtime``): ``bedrock:CallWithBearerToken`` (AWS defines no resource type for it, so ``*``;
narrowed to short-term keys by ``bedrock:bearerTokenType``), and ``bedrock:InvokeModel`` and
``bedrock:InvokeModelWithResponseStream``, the actions behind the OpenAI-compatible endpoints (a streamed response is
the second), on the model: the foundation model in the stage's region, or, for a cross-region inference profile
(``us.``, ``eu.``, ``global.`` …), the profile in the stage's region and its foundation model in whichever region
the profile routes to.

``bedrock-mantle``: its own IAM service: ``bedrock-mantle:CallWithBearerToken`` (no resource type) and
``bedrock-mantle:CreateInference`` on the account's default project, the only one the model client uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from assistant.wiring import BEDROCK_INFERENCE_PROFILE_PREFIXES, ModelProvider

BEDROCK_BEARER_TOKEN_ACTION = "bedrock:CallWithBearerToken"  # noqa: S105 - an IAM action, not a secret
BEDROCK_INVOKE_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
MANTLE_BEARER_TOKEN_ACTION = "bedrock-mantle:CallWithBearerToken"  # noqa: S105 - an IAM action, not a secret
MANTLE_INFERENCE_ACTION = "bedrock-mantle:CreateInference"
#: The project every request without a project header belongs to.
MANTLE_DEFAULT_PROJECT = "default"


@dataclass(frozen=True)
class ModelGrant:
    """The statements for one provider and model; :meth:`grant` adds them to a function's role."""

    statements: tuple[iam.PolicyStatement, ...]

    def grant(self, grantee: iam.IGrantable) -> None:
        for statement in self.statements:
            grantee.grant_principal.add_to_principal_policy(statement)


def inference_profile_geography(model_id: str) -> str | None:
    """The geography prefix of a cross-region inference profile id (``us.`` of ``us.anthropic…``), else ``None``."""
    return next((prefix for prefix in BEDROCK_INFERENCE_PROFILE_PREFIXES if model_id.startswith(prefix)), None)


def model_arns(model_id: str) -> list[str]:
    """The ARNs ``bedrock:InvokeModel*`` is checked against for ``model_id`` in the stack's region."""
    partition, region, account = cdk.Aws.PARTITION, cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID
    geography = inference_profile_geography(model_id)
    if geography is None:
        return [f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}"]
    # A cross-region profile is authorized on the profile and on the foundation model in the region it routes to,
    # which Bedrock picks per request among the geography's regions.
    return [
        f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}",
        f"arn:{partition}:bedrock:*::foundation-model/{model_id[len(geography) :]}",
    ]


def mantle_project_arn() -> str:
    return (
        f"arn:{cdk.Aws.PARTITION}:bedrock-mantle:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:project/{MANTLE_DEFAULT_PROJECT}"
    )


def model_grant(provider: ModelProvider, model_id: str) -> ModelGrant:
    if provider is ModelProvider.BEDROCK:
        return ModelGrant(
            (
                iam.PolicyStatement(
                    actions=[BEDROCK_BEARER_TOKEN_ACTION],
                    resources=["*"],
                    conditions={"StringEquals": {"bedrock:bearerTokenType": "SHORT_TERM"}},
                ),
                iam.PolicyStatement(actions=list(BEDROCK_INVOKE_ACTIONS), resources=model_arns(model_id)),
            )
        )
    if provider is ModelProvider.BEDROCK_MANTLE:
        return ModelGrant(
            (
                iam.PolicyStatement(actions=[MANTLE_BEARER_TOKEN_ACTION], resources=["*"]),
                iam.PolicyStatement(actions=[MANTLE_INFERENCE_ACTION], resources=[mantle_project_arn()]),
            )
        )
    raise ValueError(f"{provider.value} is not authenticated by the function's role")
