"""Outputs of a deployed stage's stack, looked up by the keys ``infra.names.OutputKey`` defines."""

from __future__ import annotations

from typing import Any

from infra.names import stack_name


class MissingOutputError(RuntimeError):
    pass


def load_outputs(stage: str, cloudformation: Any, required: tuple[str, ...] = ()) -> dict[str, str]:
    """``{output key: value}`` of ``GptAssistant-<stage>``; raises if a ``required`` key is absent."""
    name = stack_name(stage)
    stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [key for key in required if key not in outputs]
    if missing:
        raise MissingOutputError(f"stack {name} has no output {', '.join(missing)}; deploy the stage first")
    return outputs
