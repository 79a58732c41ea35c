"""Where to connect: the local stack's file, a deployed stage's outputs file, or its CloudFormation stack."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STACK_FILE = Path(".local/stack.json")

# --- Connection info --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionInfo:
    websocket_url: str
    region: str
    user_pool_client_id: str
    cognito_endpoint: str | None = None
    user_pool_id: str | None = None
    demo_username: str | None = None
    demo_password: str | None = None


def load_stack_file(path: Path) -> ConnectionInfo:
    """The local stack's ``.local/stack.json``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return ConnectionInfo(
        websocket_url=data["websocketUrl"],
        region=data.get("region") or _region_of(data.get("userPoolId")),
        user_pool_client_id=data["userPoolClientId"],
        cognito_endpoint=data.get("cognitoEndpoint"),
        user_pool_id=data.get("userPoolId"),
        demo_username=data.get("demoUsername"),
        demo_password=data.get("demoPassword"),
    )


def _normalise(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


def load_outputs_file(path: Path, stage: str | None) -> ConnectionInfo:
    """The outputs of ``cdk deploy --outputs-file``: ``{stack name: {output key: value}}``.

    The stacks of ``stage`` are those whose name contains it (all of them when the file holds one stack or no stage
    is given). Output keys are matched loosely (``WebSocketUrl``, ``websocketUrl``, ``WebsocketURL``...).
    """
    data: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    stacks = [name for name in data if stage is None or _normalise(stage) in _normalise(name)]
    if not stacks and len(data) == 1:
        stacks = list(data)
    outputs: dict[str, str] = {}
    for name in stacks:
        outputs.update({_normalise(k): str(v) for k, v in data[name].items()})
    return outputs_to_info(outputs, source=f"{path} (stage {stage or 'any'})")


def outputs_to_info(outputs: Mapping[str, str], *, source: str) -> ConnectionInfo:
    """A stage's CloudFormation outputs (any key spelling) as connection info."""
    normalised = {_normalise(k): v for k, v in outputs.items()}

    def find(*names: str) -> str | None:
        for name in names:
            for key, value in normalised.items():
                if key == name or key.endswith(name):
                    return value
        return None

    url = find("websocketurl", "websocketapiurl", "wsurl")
    client_id = find("userpoolclientid", "clientid")
    pool_id = find("userpoolid")
    if url is None or client_id is None:
        raise ValueError(f"{source}: no WebSocket URL or user pool client id among outputs {sorted(normalised)}")
    return ConnectionInfo(
        websocket_url=url,
        region=find("region") or _region_of(pool_id),
        user_pool_client_id=client_id,
        cognito_endpoint=find("cognitoendpoint"),
        user_pool_id=pool_id,
    )


def _region_of(user_pool_id: str | None) -> str:
    # A user pool id is "<region>_<suffix>".
    if user_pool_id and "_" in user_pool_id:
        return user_pool_id.split("_", 1)[0]
    raise ValueError("the region is unknown: give --region")


def load_deployed_stage(stage: str) -> ConnectionInfo:
    """A deployed stage's connection info, read from its CloudFormation stack's outputs (AWS credentials needed)."""
    import boto3

    from infra.names import OutputKey
    from scripts.stack_outputs import load_outputs

    required = (OutputKey.WEBSOCKET_URL, OutputKey.USER_POOL_CLIENT_ID, OutputKey.USER_POOL_ID, OutputKey.REGION)
    outputs = load_outputs(stage, boto3.client("cloudformation"), required=required)
    return outputs_to_info(outputs, source=f"stack outputs of stage {stage}")


def resolve_connection(args: argparse.Namespace) -> ConnectionInfo:
    if args.outputs_file is not None:
        return load_outputs_file(args.outputs_file, args.stage)
    if args.stage is not None and args.stack_file is None:
        return load_deployed_stage(args.stage)
    stack_file = args.stack_file or DEFAULT_STACK_FILE
    if not stack_file.exists():
        raise SystemExit(
            f"{stack_file} not found: start the local stack (make dev), or name a deployed stage with --stage."
        )
    return load_stack_file(stack_file)
