"""What a deployed function's process has, for the cold-start benchmark and the bundling test: the packages the
Lambda runtime provides, and an environment shaped like a deployed function's (placeholder values)."""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

from assistant.wiring import Env


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
    """What a deployed function's environment looks like, with placeholder values (nothing is called)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **{name.value: "placeholder" for name in Env},
        Env.CALLBACK_URL.value: "https://example.execute-api.us-east-1.amazonaws.com/dev",
        Env.QUEUE_URL.value: "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo",
        Env.LOG_LEVEL.value: "INFO",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    for numeric in (
        Env.MAX_MESSAGE_CHARS,
        Env.DAILY_MESSAGE_QUOTA,
        Env.DAILY_OUTPUT_TOKEN_QUOTA,
        Env.DAILY_INPUT_TOKEN_QUOTA,
        Env.FLUSH_INTERVAL_MS,
        Env.FLUSH_MAX_INTERVAL_MS,
        Env.FLUSH_CHARS,
        Env.MAX_RECEIVE_COUNT,
        Env.MAX_CONNECTIONS_PER_USER,
        Env.MAX_WAITING_MESSAGES,
        Env.MAX_CONVERSATIONS_PER_USER,
        Env.RETENTION_DAYS,
        Env.MAX_IMAGE_BYTES,
        Env.MAX_PDF_BYTES,
        Env.DAILY_UPLOAD_BYTES_QUOTA,
    ):
        env[numeric.value] = "10"
    for limit in (
        Env.RATE_LIMIT_SEND_MESSAGE,
        Env.RATE_LIMIT_NEW_CONVERSATION,
        Env.RATE_LIMIT_GET_HISTORY,
        Env.RATE_LIMIT_LIST_CONVERSATIONS,
        Env.RATE_LIMIT_CANCEL,
        Env.RATE_LIMIT_PING,
        Env.RATE_LIMIT_GET_USAGE,
        Env.RATE_LIMIT_RENAME_CONVERSATION,
        Env.RATE_LIMIT_DELETE_CONVERSATION,
        Env.RATE_LIMIT_DELETE_ALL_DATA,
        Env.RATE_LIMIT_CONNECT,
        Env.RATE_LIMIT_REQUEST_UPLOAD,
        Env.RATE_LIMIT_GET_ATTACHMENT,
    ):
        env[limit.value] = "10/30"
    # Optional ones are unset in a deployed function unless a stage sets them.
    for optional in (
        Env.COGNITO_ISSUER,
        Env.COGNITO_JWKS_URL,
        Env.OPENAI_BASE_URL,
        Env.MODEL_OVERRIDE,
        Env.MODEL_READ_TIMEOUT_MS,
    ):
        env.pop(optional.value)
    return env
