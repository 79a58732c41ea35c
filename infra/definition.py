"""The assistant definition a stage deploys, and the secrets its MCP servers name.

By default a stage runs the packaged ``shared/assistant/assistant.toml``. ``--context assistantFile=<path>`` deploys
another file without editing the package: it goes into a layer of its own (``/opt/assistant-definition/``) and the
functions that load the definition get its path in ``ASSISTANT_FILE``. Either way the definition is loaded and
validated at synth, so a broken file fails ``cdk synth`` rather than a cold start, and the stack knows which
secrets to grant: the worker may read exactly the secrets its MCP servers name (``secretsmanager:GetSecretValue``
on those names' ARNs), nothing else. Egress to the servers needs no grant: the functions are not in a VPC.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from assistant.definition import AssistantDefinition, check_for_provider, load_definition
from assistant.wiring import ModelProvider
from infra.layers import ARCHITECTURE, RUNTIME

#: Where the definition layer puts the file in the function's file system (layers unpack under ``/opt``).
LAYER_DIR: Final = "assistant-definition"
DEPLOYED_PATH: Final = f"/opt/{LAYER_DIR}/assistant.toml"


class DeployedDefinition(Construct):
    """The stage's definition: validated at synth, shipped in a layer when it is not the packaged one."""

    def __init__(
        self, scope: Construct, construct_id: str, *, assistant_file: Path | None, provider: ModelProvider
    ) -> None:
        super().__init__(scope, construct_id)
        self.definition: AssistantDefinition = load_definition(assistant_file)
        check_for_provider(self.definition, provider, where=str(assistant_file or "the packaged assistant.toml"))
        local = [server.name for server in self.definition.mcp_servers if server.is_local]
        if local:
            where = assistant_file or "the packaged assistant.toml"
            raise ValueError(
                f"{where}: MCP server(s) {local} are on localhost, which a deployed function cannot reach; "
                "the local stack adds its demo server on its own"
            )
        #: The layer with the file, or ``None`` for the packaged definition.
        self.layer: lambda_.LayerVersion | None = None
        #: The value of ``ASSISTANT_FILE``, or ``None`` to leave it unset (the packaged definition).
        self.path: str | None = None
        if assistant_file is not None:
            self.layer = lambda_.LayerVersion(
                self,
                "Layer",
                description=f"The assistant definition from {assistant_file.name}, at {DEPLOYED_PATH}",
                code=lambda_.Code.from_asset(str(_staged(assistant_file))),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[ARCHITECTURE],
            )
            self.path = DEPLOYED_PATH

    @property
    def secret_names(self) -> list[str]:
        return sorted({server.secret for server in self.definition.mcp_servers if server.secret is not None})

    def grant_secrets(self, grantee: iam.IGrantable) -> None:
        """``GetSecretValue`` on exactly the secrets the MCP servers name; no statement when they name none."""
        names = self.secret_names
        if not names:
            return
        stack = cdk.Stack.of(self)
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[secret_arn(stack, name) for name in names],
            )
        )


def secret_arn(stack: cdk.Stack, name: str) -> str:
    """The ARN of the secret called ``name`` in the stack's account and region. Secrets Manager appends ``-`` and
    six random characters to every secret's ARN, which ``??????`` matches (and nothing longer: a secret named
    ``name-extra`` does not match)."""
    return stack.format_arn(
        service="secretsmanager",
        resource="secret",
        resource_name=f"{name}-??????",
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )


def _staged(assistant_file: Path) -> Path:
    """A directory holding only ``<LAYER_DIR>/assistant.toml``: the layer's asset (hashed by content)."""
    staging = Path(tempfile.mkdtemp(prefix="assistant-definition-"))
    target = staging / LAYER_DIR / "assistant.toml"
    target.parent.mkdir(parents=True)
    shutil.copyfile(assistant_file, target)
    return staging
