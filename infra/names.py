"""Names shared by the stack and the scripts that talk to a deployed stage.

No aws_cdk import here: the admin scripts read these names and should start in milliseconds.
"""

from __future__ import annotations

import re
from typing import Final

from assistant.wiring import OPENAI_SECRET_NAME_FORMAT

DEFAULT_STAGE: Final = "dev"
#: Lowercase letters, digits and dashes, starting with a letter: valid in a stack name, a WebSocket stage name, a
#: secret name and a metrics namespace alike.
STAGE_NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


def validate_stage_name(stage: str) -> str:
    if not STAGE_NAME_PATTERN.fullmatch(stage):
        raise ValueError(
            f"stage {stage!r} must be 1-20 lowercase letters, digits or dashes, starting with a letter "
            "(it becomes part of stack, API stage and secret names)"
        )
    return stage


def stack_name(stage: str) -> str:
    """One stack per stage, so ``dev`` and ``prod`` deploy side by side in one account."""
    return f"GptAssistant-{validate_stage_name(stage)}"


def openai_secret_name(stage: str) -> str:
    return OPENAI_SECRET_NAME_FORMAT.format(stage=validate_stage_name(stage))


class OutputKey:
    """CloudFormation output keys. Scripts and clients look outputs up by these keys, so they are part of the
    deployment's interface: renaming one breaks every client that reads it."""

    WEBSOCKET_URL: Final = "WebSocketUrl"
    REGION: Final = "Region"
    USER_POOL_ID: Final = "UserPoolId"
    USER_POOL_CLIENT_ID: Final = "UserPoolClientId"
    OPENAI_SECRET_NAME: Final = "OpenAiSecretName"  # noqa: S105 - the output key, not a secret
    DEAD_LETTER_ALARM_NAME: Final = "DeadLetterAlarmName"
    #: The SNS topic every alarm of the stage notifies; subscribe to it to be told.
    ALARM_TOPIC_ARN: Final = "AlarmTopicArn"
    #: The chat page on CloudFront; only when the stage hosts it (``StageConfig.web_hosting``), so not in ``ALL``.
    WEB_URL: Final = "WebUrl"

    ALL: Final = (
        WEBSOCKET_URL,
        REGION,
        USER_POOL_ID,
        USER_POOL_CLIENT_ID,
        OPENAI_SECRET_NAME,
        DEAD_LETTER_ALARM_NAME,
        ALARM_TOPIC_ARN,
    )
