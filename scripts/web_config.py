"""Write the web page's ``config.json`` for a deployed stage: ``python -m scripts.web_config --stage dev``.

The page (``web/``) is static; everything it needs to know about a stage is in this file next to it, taken from the
stage's stack outputs, so the same files can be hosted anywhere (S3 and CloudFront, any static host). It holds no
secret: a public app client id, a region and a URL.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3

from infra.names import DEFAULT_STAGE, OutputKey
from scripts.stack_outputs import load_outputs

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "web" / "config.json"


def web_config(stage: str, cloudformation: Any) -> dict[str, str]:
    """The keys the page reads (``web/app.js``); Cognito's regional endpoint is derived from ``region``."""
    required = (OutputKey.WEBSOCKET_URL, OutputKey.USER_POOL_ID, OutputKey.USER_POOL_CLIENT_ID, OutputKey.REGION)
    outputs = load_outputs(stage, cloudformation, required)
    return {
        "websocketUrl": outputs[OutputKey.WEBSOCKET_URL],
        # SRP sign-in hashes the pool's name (the id after its "_") with the password.
        "userPoolId": outputs[OutputKey.USER_POOL_ID],
        "userPoolClientId": outputs[OutputKey.USER_POOL_CLIENT_ID],
        "region": outputs[OutputKey.REGION],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default=DEFAULT_STAGE)
    parser.add_argument("--region", default=None, help="defaults to your AWS profile's region")
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help=f"default: {DEFAULT_PATH}")
    args = parser.parse_args(argv)
    config = web_config(args.stage, boto3.Session(region_name=args.region).client("cloudformation"))
    args.out.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {args.out}: host the web/ folder anywhere and open index.html.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
