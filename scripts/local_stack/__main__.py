"""``python -m scripts.local_stack`` (``make dev``): run the whole system on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
import warnings
from pathlib import Path

# `python -m` from the repository root puts only the root on sys.path; the handlers need `shared/` (their layer in
# Lambda) and `lambdas/` (their code) as well, before anything imports `assistant`.
for _folder in ("lambdas", "shared"):
    _path = str(Path(__file__).resolve().parents[2] / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from scripts.local_stack.offline_model import Pace  # noqa: E402
from scripts.local_stack.stack import STACK_JSON, LocalStack, LocalStackSettings, StackInfo  # noqa: E402

log = logging.getLogger("local_stack")


def _pace(text: str) -> Pace:
    """``FIRST_TOKEN_S:TOKENS_PER_S``, e.g. ``0.3:40``; ``0:inf`` streams without pauses."""
    try:
        first, rate = text.split(":")
        return Pace(first_token_s=float(first), tokens_per_s=math.inf if rate == "inf" else float(rate))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected FIRST_TOKEN_S:TOKENS_PER_S such as 0.3:40 ({exc})") from None


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.local_stack", description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="gateway port: WebSocket, @connections, web page")
    parser.add_argument("--host", choices=["127.0.0.1"], default="127.0.0.1", help="loopback only")
    parser.add_argument(
        "--model-pace", type=_pace, default=Pace(), metavar="FIRST_S:TOKENS_PER_S", help="offline model speed"
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=LocalStackSettings.visibility_timeout_s,
        metavar="SECONDS",
        help="how long a received message stays hidden (default: as deployed, 6x the worker's timeout)",
    )
    parser.add_argument("--idle-timeout", type=float, default=600, metavar="SECONDS")
    parser.add_argument("--max-connection-age", type=float, default=7200, metavar="SECONDS")
    parser.add_argument("--concurrency", type=int, default=10, help="worker batches processed at once")
    parser.add_argument(
        "--handler-log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="Powertools"
    )
    return parser.parse_args(argv)


def _banner(info: StackInfo) -> str:
    if info.model == "offline":
        model = (
            "OFFLINE DEMO MODEL: replies are canned text from a local test server, not a language model.\n"
            "  Set OPENAI_API_KEY (or OPENAI_BASE_URL) before starting to talk to a real model."
        )
    elif info.model == "openai":
        model = "Model: OpenAI (key from OPENAI_API_KEY, stored in the local Secrets Manager)"
    else:
        model = f"Model: {info.model_base_url} (OPENAI_BASE_URL)"
    return (
        "\nLocal stack ready.\n"
        f"  Web page:        {info.web_url}\n"
        f"  WebSocket:       {info.websocket_url}?Auth=<Cognito access token>\n"
        f"  Sign in as:      {info.demo_username} (password in {STACK_JSON.relative_to(STACK_JSON.parents[1])})\n"
        f"  Cognito (moto):  {info.cognito_endpoint}  pool {info.user_pool_id}  client {info.user_pool_client_id}\n"
        f"  {model}\n"
        "Ctrl-C stops everything.\n"
    )


async def _run(settings: LocalStackSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stack = LocalStack(settings)
    try:
        info = await stack.start()
        print(_banner(info), flush=True)
        await stop.wait()
        print("Stopping...", flush=True)
    finally:
        await stack.stop()


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Metrics are disabled locally (no CloudWatch), so Powertools' "nothing to publish" warning is only noise.
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
    settings = LocalStackSettings(
        port=args.port,
        host=args.host,
        model_pace=args.model_pace,
        visibility_timeout_s=args.visibility_timeout,
        idle_timeout_s=args.idle_timeout,
        max_connection_age_s=args.max_connection_age,
        poller_concurrency=args.concurrency,
        handler_log_level=args.handler_log_level,
    )
    asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
