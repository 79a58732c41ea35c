"""Model provider profiles: which server of the Responses API a stage talks to, and what it can do.

The model client (``assistant.model``), the stack (IAM grants, the secret) and docs/providers.md all read
:data:`PROVIDER_CAPABILITIES`, so what a provider supports is said once, with its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal


class ModelProvider(StrEnum):
    """Provider profiles: which server of the Responses API a stage talks to. The conversation is ours in every one
    (stored turns are the input of every request); they differ in what the server keeps between requests and how it
    authenticates, which :attr:`capabilities` declares once for the model client, the stack and the docs."""

    #: OpenAI: stored responses, background mode for resumable definitions (a reply survives a dropped stream or
    #: a handed-back worker), stream resume, tool rounds continued with ``previous_response_id``, Stop cancels.
    OPENAI = "openai"
    #: Any other server of the Responses API (vLLM, Ollama, LM Studio, llama.cpp): stateless. Only
    #: ``POST /responses``; no ``store``, ``background`` or ``previous_response_id``; a dropped stream is retried
    #: from the start of the turn.
    OPENAI_COMPATIBLE = "openai-compatible"
    #: Amazon Bedrock's OpenAI-compatible endpoint on ``bedrock-runtime`` (AWS's recommended one): synchronous, so
    #: stateless like ``openai-compatible``. Every request is SigV4-signed with the function's own role by the
    #: ``openai`` SDK's Bedrock provider (``assistant.bedrock``): no key anywhere.
    BEDROCK = "bedrock"
    #: Amazon Bedrock's ``bedrock-mantle`` endpoint: stored responses, background inference (a response outlives its
    #: stream, is retrieved and cancelled) and ``previous_response_id``; its own IAM service (``bedrock-mantle:``),
    #: signed the same way.
    BEDROCK_MANTLE = "bedrock-mantle"

    @property
    def capabilities(self) -> ProviderCapabilities:
        return PROVIDER_CAPABILITIES[self]

    def base_url(self, region: str) -> str | None:
        """The provider's Responses endpoint in ``region``; ``None``: the SDK's default (OpenAI) or whatever
        ``OPENAI_BASE_URL`` names (self-hosted servers have no fixed address)."""
        template = self.capabilities.base_url_template
        return template.format(region=region) if template else None


@dataclass(frozen=True)
class ProviderCapabilities:
    """What a provider's Responses endpoint supports beyond one streamed response, and how it authenticates."""

    #: ``store=true``, ``responses.retrieve`` and ``previous_response_id``.
    stored_responses: bool
    #: ``background=true`` and ``responses.cancel`` (needs stored responses): a response outlives its stream.
    background: bool
    #: ``responses.retrieve(id, stream=True, starting_after=N)`` re-streams a background response's events.
    stream_resume: bool
    #: ``reasoning={"effort": ...}`` is accepted.
    reasoning: bool
    #: ``tool_choice`` is honoured (the last permitted tool round forbids tools with ``"none"``).
    tool_choice: bool
    #: ``truncation="auto"``: the server drops the oldest input itself when it outgrows the window.
    truncation_auto: bool
    #: ``secret``: an API key in the stage's secret; ``optional_secret``: a key only if the server wants one;
    #: ``aws_sigv4``: no key at all, every request SigV4-signed with the function's role by the SDK's Bedrock
    #: provider for :attr:`bedrock_endpoint` (``assistant.bedrock``).
    auth: Literal["secret", "optional_secret", "aws_sigv4"]
    #: The endpoint, ``{region}`` filled in from the function's region; ``None``: the SDK's default or
    #: ``OPENAI_BASE_URL``. An explicit ``OPENAI_BASE_URL`` always wins (and is signed the same way).
    base_url_template: str | None = None
    #: Which of Bedrock's endpoints the SDK's provider signs for (``runtime``: SigV4 service ``bedrock``;
    #: ``mantle``: service ``bedrock-mantle``); ``None`` for a provider that is not Bedrock.
    bedrock_endpoint: Literal["runtime", "mantle"] | None = None
    #: The model a stage of this profile uses without ``--context model=...`` (its IAM grant names it); ``None``:
    #: the packaged definition's model. Model ids differ per Bedrock endpoint, so each profile names its own.
    default_model: str | None = None
    #: The kinds of attachment the profile's models read (``image``: ``input_image``; ``pdf``: ``input_file``); a
    #: message with another kind is refused at intake with ``unsupported_attachment`` (docs/providers.md).
    reads_attachments: tuple[Literal["image", "pdf"], ...] = ("image", "pdf")
    #: How a file is handed to the model: ``url`` (a short-lived presigned GET the provider fetches) or ``inline``
    #: (a base64 ``data:`` URL in the request). See docs/providers.md for why each profile uses which.
    attachment_transport: Literal["url", "inline"] = "inline"
    #: The ``reasoning_effort`` values the profile's models take; ``None``: every value the SDK knows. A definition
    #: with another value is refused at synth and at load (:func:`definition_refusal`), naming field and profile.
    reasoning_efforts: tuple[str, ...] | None = None


PROVIDER_CAPABILITIES: Final[dict[ModelProvider, ProviderCapabilities]] = {
    ModelProvider.OPENAI: ProviderCapabilities(
        stored_responses=True,
        background=True,
        stream_resume=True,
        reasoning=True,
        tool_choice=True,
        truncation_auto=True,
        auth="secret",
        # OpenAI fetches image and file URLs itself, so a deployed stage sends a presigned GET, not megabytes of
        # base64 in every request; a bucket it cannot reach (the local stack's moto on 127.0.0.1) falls back to
        # inline data (assistant.attachments.AttachmentReader).
        attachment_transport="url",
    ),
    # One profile for every self-hosted server, so it claims only what all of them do (docs/providers.md has the
    # table with sources): `reasoning` is never sent, since Ollama answers 400 when it is sent to a model that does
    # not think and the profile cannot know the model; `tool_choice` counts as ignored, since Ollama ignores it
    # (its Responses API takes `tools` but not `tool_choice`), so the last tool round offers no tools at all.
    ModelProvider.OPENAI_COMPATIBLE: ProviderCapabilities(
        stored_responses=False,
        background=False,
        stream_resume=False,
        reasoning=False,
        tool_choice=False,
        truncation_auto=False,
        auth="optional_secret",
    ),
    # AWS: "Requests on bedrock-runtime are always synchronous, server-side tools aren't available, and only the
    # default project is supported": no background, no stored responses to retrieve or continue. Function tools,
    # tool_choice and reasoning effort are part of the Responses API it serves (docs/providers.md).
    ModelProvider.BEDROCK: ProviderCapabilities(
        stored_responses=False,
        background=False,
        stream_resume=False,
        reasoning=True,
        tool_choice=True,
        truncation_auto=False,
        auth="aws_sigv4",
        # AWS's base URL for the Responses API on bedrock-runtime (the SDK's provider defaults to the same):
        # https://docs.aws.amazon.com/bedrock/latest/userguide/inference-responses-api.html
        base_url_template="https://bedrock-runtime.{region}.amazonaws.com/openai/v1",
        bedrock_endpoint="runtime",
        # bedrock-runtime ids carry a version suffix: "Model ID openai.gpt-oss-120b-1:0",
        # https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-openai.html
        default_model="openai.gpt-oss-120b-1:0",
        # GPT OSS reads text only (model-parameters-openai.html above): images and PDFs are refused at intake.
        reads_attachments=(),
        # GPT OSS takes reasoning effort "low", "medium" or "high" (model-parameters-openai.html above); the gpt-5
        # family's "minimal" and "none" are refused.
        reasoning_efforts=("low", "medium", "high"),
    ),
    # AWS documents asynchronous (background) inference and stateful conversations (stored responses,
    # previous_response_id) on bedrock-mantle; not a re-stream of a running response from an event offset, so a
    # dropped stream is recovered by polling the stored response (what the model client does anyway).
    ModelProvider.BEDROCK_MANTLE: ProviderCapabilities(
        stored_responses=True,
        background=True,
        stream_resume=False,
        reasoning=True,
        tool_choice=True,
        truncation_auto=False,
        auth="aws_sigv4",
        # AWS gives mantle's base URL as .../v1 (inference-responses-api.html above; a few models are served under
        # /openai/v1 instead, the SDK provider's own default, so the model's row in AWS's table decides, and
        # OPENAI_BASE_URL overrides). GPT OSS models are served there under /v1.
        base_url_template="https://bedrock-mantle.{region}.api.aws/v1",
        bedrock_endpoint="mantle",
        # Mantle ids have no version suffix (its /v1/models catalog); AWS names Responses API access to the GPT
        # OSS models among mantle's reasons to exist (inference-responses-api.html above).
        default_model="openai.gpt-oss-120b",
        reads_attachments=(),
        reasoning_efforts=("low", "medium", "high"),
    ),
}

#: The geography prefixes of Bedrock's system-defined cross-region inference profiles (a bedrock-runtime model id
#: such as ``us.anthropic...``); the default models (:attr:`ProviderCapabilities.default_model`) are plain ids.
BEDROCK_INFERENCE_PROFILE_PREFIXES: Final = ("us.", "eu.", "apac.", "global.", "jp.", "au.", "ca.", "us-gov.")
