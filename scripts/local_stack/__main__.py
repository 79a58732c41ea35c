"""``python -m scripts.local_stack`` (``make dev``): run the whole system on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import socket
import sys
import warnings
from pathlib import Path

from scripts.local_stack.offline_model import Pace
from scripts.local_stack.settings import LOG_DIR, STACK_JSON, LocalStackSettings, StackInfo
from scripts.local_stack.stack import LocalStack

log = logging.getLogger("local_stack")


def _pace(text: str) -> Pace:
    """``FIRST_TOKEN_S:TOKENS_PER_S[:REASONING_S]``, e.g. ``0.3:40:1.5``; ``0`` is no pause, so ``0:0`` streams
    without any."""
    try:
        first, rate, *reasoning = text.split(":")
        if len(reasoning) > 1:
            raise ValueError("at most three numbers")
        return Pace(
            first_token_s=float(first),
            tokens_per_s=float(rate),
            reasoning_s=float(reasoning[0]) if reasoning else 0.0,
        )
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected FIRST_TOKEN_S:TOKENS_PER_S[:REASONING_S] such as 0.3:40:1.5 ({exc})"
        ) from None


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.local_stack", description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="gateway port: WebSocket, @connections, web page")
    parser.add_argument("--host", choices=["127.0.0.1"], default="127.0.0.1", help="loopback only")
    parser.add_argument(
        "--model-pace",
        type=_pace,
        # A reasoning model's silence before its first word, then text at a readable speed (Pace.demo).
        default=Pace.demo(),
        metavar="FIRST_S:TOKENS_PER_S[:REASONING_S]",
        help="offline model speed (0 = no pause)",
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
    parser.add_argument(
        "--isolation",
        choices=["process", "thread"],
        default="process",
        help="process (default): each function in its own processes with exactly its deployed environment and "
        "metrics on, as in Lambda; thread: all handlers in this process under the union of their environments",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=LOG_DIR,
        metavar="DIR",
        help="where each function's log goes in process isolation: DIR/<function>.log (its logs and EMF metrics)",
    )
    return parser.parse_args(argv)


def _banner(info: StackInfo, settings: LocalStackSettings) -> str:
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
        "  Sign in:         open the web page and press 'Use the demo account' (one click, no password), or\n"
        f"                   sign in as {info.demo_username} with the demoPassword in "
        f"{STACK_JSON.relative_to(STACK_JSON.parents[1])} (new each run: local state is not kept)\n"
        "  Terminal chat:   .venv/bin/python -m scripts.chat   (signs in as the demo user)\n"
        f"  Cognito (moto):  {info.cognito_endpoint}  pool {info.user_pool_id}  client {info.user_pool_client_id}\n"
        f"  {model}\n"
        f"  {_handlers(settings)}\n"
        "Ctrl-C stops everything.\n"
    )


def _handlers(settings: LocalStackSettings) -> str:
    if settings.isolation == "thread":
        return "Handlers:        in this process (thread isolation), metrics off; their logs on this console"
    return f"Function logs:   {settings.log_dir}/<function>.log (each function in processes of its own, metrics on)"


async def _run(settings: LocalStackSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stack = LocalStack(settings)
    try:
        info = await stack.start()
        print(_banner(info, settings), flush=True)
        await stop.wait()
        print("Stopping...", flush=True)
    finally:
        await stack.stop()


def _port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (checked before the slow start, so the answer is quick)."""
    if port == 0:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As aiohttp does: a port in TIME_WAIT after the last run is free, only a listener makes it busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _port_busy_message(host: str, port: int) -> str:
    return (
        f"Port {port} on {host} is already in use (another `make dev`?): stop that process, "
        f"or pick a free port with `make dev PORT={port + 1}`."
    )


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if _port_in_use(args.host, args.port):
        sys.exit(_port_busy_message(args.host, args.port))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # In thread isolation metrics are off (no CloudWatch), so Powertools' "nothing to publish" warning is only noise.
    # (In process isolation the functions warn in their own logs, as in Lambda.)
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
        isolation=args.isolation,
        log_dir=args.log_dir,
    )
    try:
        asyncio.run(_run(settings))
    except OSError as exc:
        # Taken between the check above and the gateway's start: the same one line, no traceback.
        if exc.errno != errno.EADDRINUSE:
            raise
        sys.exit(_port_busy_message(args.host, args.port))


if __name__ == "__main__":
    main()
