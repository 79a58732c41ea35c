"""What a deployed function's process has, for the cold-start benchmark and the bundling test: the packages the
Lambda runtime provides, and an environment shaped like a deployed function's (placeholder values)."""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

from assistant.environment import SETTINGS, Env


def runtime_provided(into: Path) -> Path:
    """boto3, botocore and their dependencies, as the Lambda runtime provides them (symlinks into this venv)."""
    provided = into / "runtime-provided"
    provided.mkdir(parents=True, exist_ok=True)
    pending, seen = ["boto3"], set()
    while pending:
        dist = metadata.distribution(pending.pop())
        name = dist.metadata["Name"].lower()
        if name in seen:
            continue
        seen.add(name)
        top_level = (dist.read_text("top_level.txt") or "").split()
        files = dist.files or []
        names = set(top_level) or {str(f).split("/")[0] for f in files if not str(f).split("/")[0].endswith("-info")}
        for top in names:
            for candidate in (Path(str(dist.locate_file(top))), Path(str(dist.locate_file(f"{top}.py")))):
                if candidate.exists() and not (provided / candidate.name).exists():
                    (provided / candidate.name).symlink_to(candidate)
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                pending.append(re.split(r"[;\s<>=!~\[]", requirement, maxsplit=1)[0])
    return provided


def handler_env() -> dict[str, str]:
    """What a deployed function's environment looks like, with placeholder values (nothing is called): every
    setting of ``assistant.environment.SETTINGS`` at its default, or a placeholder where it has none, and the
    optional ones unset, as the deployed stack leaves them (an OpenAI stage sets the key's secret name)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    for setting in SETTINGS.values():
        if setting.default is not None:
            env[setting.env.value] = setting.default
        elif not setting.optional or setting.env is Env.OPENAI_SECRET_NAME:
            env[setting.env.value] = "placeholder"
    env[Env.CALLBACK_URL.value] = "https://example.execute-api.us-east-1.amazonaws.com/dev"
    env[Env.QUEUE_URL.value] = "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo"
    return env
