"""What a function needs to call a Bedrock model with SigV4-signed requests (``bedrock`` and ``bedrock-mantle``).

The ``openai`` SDK's Bedrock provider signs every request with the function's role (``assistant.bedrock``), so IAM
authorizes each call on the role's own policy: there is no bearer token and no ``CallWithBearerToken`` grant. The
role gets the inference actions its calls need on the stage's model, nothing else.

``bedrock`` (``bedrock-runtime``, SigV4 service ``bedrock``): ``bedrock:InvokeModel`` and
``bedrock:InvokeModelWithResponseStream``, the actions behind its OpenAI-compatible APIs (AWS's policy for the
bedrock-runtime endpoint, "Converse, Invoke, Chat Completions, and Responses APIs":
https://docs.aws.amazon.com/bedrock/latest/userguide/inference.html), on the model: the foundation model in the
stage's region, or, for a cross-region inference profile (``us.``, ``eu.``, ``global.`` …), the profile in the
stage's region and its foundation model in whichever region the profile routes to. Also ``bedrock:InvokeModel`` on
the account's default project: every bedrock-runtime request resolves to
``arn:aws:bedrock:<region>:<account>:project/default``
(https://docs.aws.amazon.com/bedrock/latest/userguide/projects.html), and the OpenAI-compatible Responses API
authorizes ``InvokeModel`` against it besides the model (observed by others calling it with SigV4; a role without
it is refused naming that resource). The worker alone: a synchronous endpoint has nothing to cancel from elsewhere.

``bedrock-mantle`` (its own IAM service, SigV4 service ``bedrock-mantle``): on the account's default project, the
only one the model client uses, ``CreateInference`` (create a response) and ``GetInference`` (read it back after a
dropped stream), which AWS's managed policy ``AmazonBedrockMantleInferenceAccess`` grants as ``CreateInference`` and
``Get*`` on ``project/*``
(https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonBedrockMantleInferenceAccess.html), and
``CancelInference`` (Stop, or a reader gone), which that policy does not grant and the Service Authorization
Reference defines as a Write action on the same resource type
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_bedrock-mantle.html). The worker gets all
three; ``commands`` only cancels a running background response, so it gets ``CancelInference`` alone. The managed
policy's ``List*`` and its ``CallWithBearerToken`` statement are for model discovery and API keys, neither of which
the functions use.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from assistant.wiring import BEDROCK_INFERENCE_PROFILE_PREFIXES, ModelProvider

BEDROCK_INVOKE_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
#: What the OpenAI-compatible APIs on bedrock-runtime check against the account's default project.
BEDROCK_PROJECT_ACTIONS = ("bedrock:InvokeModel",)
#: Create a response, read it back (after a dropped stream), cancel it (Stop).
MANTLE_WORKER_ACTIONS = (
    "bedrock-mantle:CreateInference",
    "bedrock-mantle:GetInference",
    "bedrock-mantle:CancelInference",
)
#: ``commands`` stops a running background response and does nothing else with the model.
MANTLE_CANCEL_ACTIONS = ("bedrock-mantle:CancelInference",)
#: The project every request without a project header belongs to (the only one bedrock-runtime supports).
DEFAULT_PROJECT = "default"


@dataclass(frozen=True)
class ModelGrant:
    """The statements for one provider and model: the worker's, and those of a function that only cancels."""

    #: The worker: streams replies (and, on mantle, reads and cancels them).
    worker: tuple[iam.PolicyStatement, ...]
    #: ``commands``: cancels a running background response (mantle); empty where nothing outlives its stream.
    canceller: tuple[iam.PolicyStatement, ...] = ()

    def grant(self, grantee: iam.IGrantable, *, streams_replies: bool) -> None:
        for statement in self.worker if streams_replies else self.canceller:
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


def default_project_arn(service: str) -> str:
    """The account's default project in the stack's region, as ``service`` (``bedrock``, ``bedrock-mantle``)
    names it."""
    return f"arn:{cdk.Aws.PARTITION}:{service}:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:project/{DEFAULT_PROJECT}"


def model_grant(provider: ModelProvider, model_id: str) -> ModelGrant:
    if provider is ModelProvider.BEDROCK:
        return ModelGrant(
            worker=(
                iam.PolicyStatement(actions=list(BEDROCK_INVOKE_ACTIONS), resources=model_arns(model_id)),
                iam.PolicyStatement(actions=list(BEDROCK_PROJECT_ACTIONS), resources=[default_project_arn("bedrock")]),
            )
        )
    if provider is ModelProvider.BEDROCK_MANTLE:
        project = default_project_arn("bedrock-mantle")
        return ModelGrant(
            worker=(iam.PolicyStatement(actions=list(MANTLE_WORKER_ACTIONS), resources=[project]),),
            canceller=(iam.PolicyStatement(actions=list(MANTLE_CANCEL_ACTIONS), resources=[project]),),
        )
    raise ValueError(f"{provider.value} is not authenticated by the function's role")
