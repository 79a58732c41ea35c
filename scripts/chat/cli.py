"""Chat with the deployed (or local) assistant from a terminal.

The command line of ``python -m scripts.chat``: its arguments, and :func:`main`, which wires the pieces together.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from collections.abc import Sequence
from pathlib import Path

from scripts.chat.client import ChatClient
from scripts.chat.connection_info import DEFAULT_STACK_FILE, resolve_connection
from scripts.chat.session import ChatSession
from scripts.chat.signin import AuthenticationFailed, CognitoSignIn
from scripts.chat.terminal import TerminalChat

# --- Entry point ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.chat", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--stack-file", type=Path, help=f"the local stack's connection file ({DEFAULT_STACK_FILE})")
    source.add_argument("--outputs-file", type=Path, help="a deployed stage's `cdk deploy --outputs-file` JSON")
    parser.add_argument(
        "--stage",
        help="a deployed stage: read its stack outputs from CloudFormation (or pick its stacks in --outputs-file)",
    )
    parser.add_argument("--username", help="default: the local stack's demo user, else asked")
    parser.add_argument("--password", help="default: the demo user's, else asked (without echo)")
    parser.add_argument("--conversation", help="continue this conversation id")
    parser.add_argument(
        "--print-token",
        action="store_true",
        help="sign in (SRP), print an access token on stdout and exit: for wscat or curl (`TOKEN=$(...)`)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = resolve_connection(args)
    username = args.username or info.demo_username or input("username: ")
    password = args.password or (info.demo_password if username == info.demo_username else None)
    if not password:
        password = getpass.getpass(f"password for {username}: ")
    if not info.user_pool_id:
        raise SystemExit("The connection info has no user pool id, which SRP sign-in needs: give the stage's outputs.")
    tokens = CognitoSignIn(
        user_pool_id=info.user_pool_id,
        client_id=info.user_pool_client_id,
        username=username,
        password=password,
        region=info.region,
        endpoint_url=info.cognito_endpoint,
    )

    if args.print_token:
        try:
            print(tokens.access_token())
        except AuthenticationFailed as exc:
            raise SystemExit(str(exc)) from None
        return 0

    async def chat() -> int:
        client = ChatClient(info.websocket_url, tokens, session=ChatSession(conversation_id=args.conversation))
        return await TerminalChat(client, username=username).run()

    try:
        return asyncio.run(chat())
    except KeyboardInterrupt:  # platforms without loop signal handlers
        return 130
