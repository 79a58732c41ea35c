"""The list prices the benchmark turns counts into money with: one place, so every cost row uses the same ones.

us-east-1 list prices, exactly as docs/scaling.md ("Prices used") lists them; when that table changes, change these.
Each is in US dollars per single unit (one message, one write request unit, one GB-second, one token).
"""

from __future__ import annotations

from typing import Final

#: API Gateway WebSocket messages: $1.00 per million (first billion a month), metered in 32 KB increments. Every
#: frame of a reply is well under 32 KB, so one frame is one message.
WEBSOCKET_MESSAGE_USD: Final = 1.00 / 1_000_000
#: DynamoDB on-demand: $0.625 per million write request units. A checkpoint updates the message record, which
#: holds ids, status and offsets only (no text), so it stays under 1 KB: one write request unit per checkpoint.
DYNAMODB_WRITE_REQUEST_UNIT_USD: Final = 0.625 / 1_000_000
#: Lambda arm64 duration, per GB-second (the worker's configured memory times its billed duration).
LAMBDA_ARM64_GB_SECOND_USD: Final = 0.0000133334
#: The model streaming costs are held against (the default in ``shared/assistant/assistant.toml``).
MODEL_NAME: Final = "gpt-5-mini"
#: gpt-5-mini's output tokens: $2.00 per million.
MODEL_OUTPUT_TOKEN_USD: Final = 2.00 / 1_000_000
#: Costs are quoted per this many output tokens.
TOKENS_PER_QUOTE = 1000


def model_output_usd(tokens: float = TOKENS_PER_QUOTE) -> float:
    return tokens * MODEL_OUTPUT_TOKEN_USD
