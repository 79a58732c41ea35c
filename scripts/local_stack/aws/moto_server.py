"""moto's server on 127.0.0.1, and boto3 clients pointed at it."""

from __future__ import annotations

import logging
import urllib.request
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from scripts.local_stack.aws.moto_patches import (
    enforce_s3_post_policy,
    keep_fifo_order_on_redelivery,
    revoke_cognito_tokens,
    roll_back_transactions_by_item,
    serialise_moto_dynamodb,
    verify_cognito_sign_in,
)

REGION = "us-east-1"
#: moto accepts any credentials; these only keep botocore from looking for real ones.
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class MotoServer:
    """moto's threaded server on 127.0.0.1; port 0 picks a free one."""

    def __init__(self, port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint = ""

    def start(self) -> str:
        # werkzeug logs every request at INFO on stderr; the console is for the connect info and errors.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        keep_fifo_order_on_redelivery()
        serialise_moto_dynamodb()
        roll_back_transactions_by_item()
        revoke_cognito_tokens()
        verify_cognito_sign_in()
        enforce_s3_post_policy()
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

    def stop(self) -> None:
        # moto keeps its backends in process-wide state that outlives the server: clear it, so a stack started
        # later in the same process (tests, benchmarks) provisions into an empty account.
        if self.endpoint:
            request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - our own server on 127.0.0.1
                pass
        self._server.stop()


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **FAKE_CREDENTIALS)
