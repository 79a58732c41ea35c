"""Create a user in the stage's Cognito pool: ``python -m scripts.create_user --stage dev --email you@example.com``.

Self sign-up is off by default, so this is how users come to exist. The password is set permanent (no
FORCE_CHANGE_PASSWORD challenge), so the user can sign in (SRP, from the page or the terminal client) right away.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
from collections.abc import Callable, Sequence
from typing import Any

import boto3

from infra.names import DEFAULT_STAGE, OutputKey
from scripts.stack_outputs import load_outputs


def create_user(stage: str, email: str, password: str, *, cloudformation: Any, cognito: Any) -> str:
    """Create (or re-password) ``email`` in the stage's pool with a permanent password; return the pool id."""
    pool_id = load_outputs(stage, cloudformation, (OutputKey.USER_POOL_ID,))[OutputKey.USER_POOL_ID]
    # An existing user only gets the new password below, which is what the operator asked for.
    with contextlib.suppress(cognito.exceptions.UsernameExistsException):
        cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=email,
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
            # The operator hands the password over; Cognito must not email a temporary one.
            MessageAction="SUPPRESS",
        )
    cognito.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
    return str(pool_id)


def main(argv: Sequence[str] | None = None, read_password: Callable[[str], str] = getpass.getpass) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default=DEFAULT_STAGE)
    parser.add_argument("--email", required=True)
    parser.add_argument("--region", default=None, help="defaults to your AWS profile's region")
    args = parser.parse_args(argv)
    password = read_password("Password (min. 12 chars, upper, lower, digit, symbol): ")
    if password != read_password("Repeat password: "):
        print("Passwords differ.", file=sys.stderr)
        return 1
    session = boto3.Session(region_name=args.region)
    pool_id = create_user(
        args.stage,
        args.email,
        password,
        cloudformation=session.client("cloudformation"),
        cognito=session.client("cognito-idp"),
    )
    print(f"User {args.email} can sign in to pool {pool_id}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
