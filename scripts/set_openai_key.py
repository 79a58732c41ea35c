"""Put the OpenAI API key into the stage's secret: ``python -m scripts.set_openai_key --stage dev``.

The key is read with getpass (or from stdin when piped), never echoed, logged or passed on the command line, where
it would land in shell history and the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from typing import Any

import boto3

from infra.names import DEFAULT_STAGE, OutputKey
from scripts.stack_outputs import load_outputs


def set_openai_key(stage: str, key: str, *, cloudformation: Any, secretsmanager: Any) -> str:
    """Store ``key`` as the current version of the stage's secret; return the secret's name."""
    key = key.strip()
    if not key:
        raise ValueError("empty key")
    secret_name = load_outputs(stage, cloudformation, (OutputKey.OPENAI_SECRET_NAME,))[OutputKey.OPENAI_SECRET_NAME]
    secretsmanager.put_secret_value(SecretId=secret_name, SecretString=key)
    return secret_name


def main(argv: Sequence[str] | None = None, read_key: Callable[[str], str] = getpass.getpass) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default=DEFAULT_STAGE)
    parser.add_argument("--region", default=None, help="defaults to your AWS profile's region")
    args = parser.parse_args(argv)
    key = sys.stdin.readline() if not sys.stdin.isatty() else read_key("OpenAI API key (input hidden): ")
    session = boto3.Session(region_name=args.region)
    name = set_openai_key(
        args.stage,
        key,
        cloudformation=session.client("cloudformation"),
        secretsmanager=session.client("secretsmanager"),
    )
    print(f"Stored the key in {name}. Running functions pick it up within five minutes.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
