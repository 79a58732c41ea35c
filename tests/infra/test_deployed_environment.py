"""Every function of the synthesized template, run the way Lambda runs it.

A deployed stage once refused every connection: the authorizer's environment had no metrics namespace, so
Powertools' metrics flush raised on every invocation, while the tests and the local stack gave every handler a
kinder environment than the template's. Here each function's handler is imported and invoked in a fresh interpreter
whose environment is exactly the template's ``Environment.Variables`` (intrinsics resolved to the resources below),
plus what the Lambda runtime sets, and nothing from the test process. Metrics are on, as in Lambda.

AWS calls go to a moto server through the SDK's endpoint setting (``AWS_ENDPOINT_URL``, the harness's redirect,
not a variable of any function). Resources are created in moto from the template's own properties; the model's
secret is created without a value, exactly as the stack creates it.

What this cannot catch: IAM (moto allows every call), and imports of packages the layers do not bundle (the venv
stands in for the layers here; ``test_bundling.py`` checks the layers' contents).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Template

from scripts.local_stack.aws.moto_server import MotoServer
from tests.events import authorizer_event, websocket_event
from tests.infra.conftest import resources

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "abc123defg"
#: Invokes ``sys.argv[1]`` ("module.function") with the JSON event on stdin; the result goes to the file in
#: ``sys.argv[2]`` because the handler's own stdout is its log (JSON log lines and EMF metrics).
_RUNNER = """
import importlib, json, sys, uuid, time
module, _, attribute = sys.argv[1].rpartition(".")
handler = getattr(importlib.import_module(module), attribute)

class Context:
    function_name = "fn"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/fn"
    log_stream_name = "stream"
    def get_remaining_time_in_millis(self):
        return 10_000

result = handler(json.load(sys.stdin), Context())
with open(sys.argv[2], "w") as out:
    json.dump(result, out)
"""


@dataclass
class Invocation:
    result: Any
    log: str

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log.splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def metric_namespaces(self) -> set[str]:
        """Namespaces of the EMF documents the function printed (proof that metrics were flushed)."""
        return {
            directive["Namespace"]
            for record in self.log_records()
            for directive in record.get("_aws", {}).get("CloudWatchMetrics", [])
        }


@dataclass
class DeployedStage:
    """The template's functions and the moto resources their environment points at."""

    template: dict[str, Any]
    endpoint: str
    workdir: Path
    refs: dict[str, str] = field(default_factory=dict)

    def function(self, handler: str) -> dict[str, Any]:
        matches = [
            resource
            for resource in self.template["Resources"].values()
            if resource["Type"] == "AWS::Lambda::Function" and resource["Properties"]["Handler"] == handler
        ]
        assert len(matches) == 1, f"expected one function with handler {handler}"
        return matches[0]

    def resolve(self, value: Any) -> str:
        """A template value with its intrinsics resolved; anything this cannot resolve fails the test."""
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref" and argument in self.refs:
                return self.refs[argument]
            if function == "Fn::Join":
                separator, parts = argument
                return str(separator).join(self.resolve(part) for part in parts)
        raise AssertionError(f"the test cannot resolve {value!r}; teach DeployedStage.resolve about it")

    def environment(self, handler: str) -> dict[str, str]:
        """The function's template environment plus what the Lambda runtime provides, and nothing else."""
        function = self.function(handler)
        declared = function["Properties"].get("Environment", {}).get("Variables", {})
        name = f"dev-{handler.split('.')[0]}"
        return {
            **{key: self.resolve(value) for key, value in declared.items()},
            # Set by the Lambda runtime for every function.
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function["Properties"].get("MemorySize", 128)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/29/[$LATEST]0123456789abcdef",
            "AWS_LAMBDA_LOG_FORMAT": function["Properties"].get("LoggingConfig", {}).get("LogFormat", "Text"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "LAMBDA_TASK_ROOT": str(REPO_ROOT / "lambdas"),
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin",
            # /opt/python (the assistant layer) and /var/task (the handlers); the venv stands in for the deps layer.
            "PYTHONPATH": os.pathsep.join((str(REPO_ROOT / "shared"), str(REPO_ROOT / "lambdas"))),
            # The harness's redirect of every SDK call to moto.
            "AWS_ENDPOINT_URL": self.endpoint,
            # Lambda's trace header for an invocation it sampled, on a function with active tracing: the Tracer
            # (X-Ray SDK, botocore patched) runs here as it does in AWS; its segments go to a UDP port nobody reads.
            **(
                {"_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}
                if function["Properties"].get("TracingConfig", {}).get("Mode") == "Active"
                else {}
            ),
        }

    def invoke(self, handler: str, event: dict[str, Any]) -> Invocation:
        out = self.workdir / f"result-{handler}.json"
        out.unlink(missing_ok=True)
        completed = subprocess.run(
            [sys.executable, "-c", _RUNNER, handler, str(out)],
            input=json.dumps(event),
            env=self.environment(handler),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        log = completed.stdout + completed.stderr
        assert completed.returncode == 0, f"{handler} raised with its template environment:\n{log[-3000:]}"
        return Invocation(result=json.loads(out.read_text()), log=log)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def _provision(stage: DeployedStage) -> None:
    """Create in moto what the template's functions refer to, from the template's own properties."""
    refs = stage.refs
    refs.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"})
    refs["AWS::Partition"] = "aws"
    dynamodb, sqs = stage.client("dynamodb"), stage.client("sqs")
    for logical_id, resource in stage.template["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::DynamoDB::Table":
            name = f"dev-{logical_id}"
            dynamodb.create_table(
                TableName=name,
                KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
            )
            refs[logical_id] = name
        elif kind == "AWS::SQS::Queue":
            fifo = bool(props.get("FifoQueue"))
            attributes = {"FifoQueue": "true"} if fifo else {}
            if props.get("ContentBasedDeduplication"):
                attributes["ContentBasedDeduplication"] = "true"
            name = f"dev-{logical_id}" + (".fifo" if fifo else "")
            refs[logical_id] = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        elif kind == "AWS::SecretsManager::Secret":
            # No SecretString: the stack creates the secret empty, and so does this.
            stage.client("secretsmanager").create_secret(Name=props["Name"])
            refs[logical_id] = props["Name"]
        elif kind == "AWS::Cognito::UserPool":
            refs[logical_id] = f"{REGION}_AbCdEfGhI"
        elif kind == "AWS::Cognito::UserPoolClient":
            refs[logical_id] = "1example23456789abcdefghij"
        elif kind == "AWS::ApiGatewayV2::Api":
            refs[logical_id] = API_ID
        elif kind == "AWS::ApiGatewayV2::Stage":
            refs[logical_id] = props["StageName"]


@pytest.fixture(scope="module")
def stage(dev_template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedStage]:
    moto = MotoServer()
    endpoint = moto.start()
    try:
        deployed = DeployedStage(
            template=dev_template.to_json(), endpoint=endpoint, workdir=tmp_path_factory.mktemp("lambda")
        )
        _provision(deployed)
        yield deployed
    finally:
        moto.stop()


def _queue_url(stage: DeployedStage) -> str:
    """The queue sendMessage writes to: the one in its environment."""
    return stage.environment("send_message.handler")["QUEUE_URL"]


def test_every_function_in_the_template_is_exercised_here(dev_template: Template) -> None:
    # Ours, not the one CDK's BucketDeployment brings to copy the web page at deploy time (its code is aws-cdk-lib's).
    handlers = {
        r["Properties"]["Handler"]
        for logical_id, r in resources(dev_template, "AWS::Lambda::Function").items()
        if not logical_id.startswith("CustomCDKBucketDeployment")
    }
    exercised = {
        "authorizer.handler",
        "default.handler",
        "connect.handler",
        "disconnect.handler",
        "commands.handler",
        "send_message.handler",
        "worker.handler",
    }
    assert handlers == exercised, "a new function needs a test here that runs it with its template environment"


def test_every_function_flushes_metrics_to_its_stage_namespace(stage: DeployedStage) -> None:
    invocation = stage.invoke("default.handler", websocket_event("$default", {"action": "nope"}, api_id=API_ID))
    assert invocation.metric_namespaces() == {"GptAssistant/dev"}


def test_authorizer_denies_a_refused_token(stage: DeployedStage) -> None:
    invocation = stage.invoke("authorizer.handler", authorizer_event("not-a-jwt", api_id=API_ID, stage="dev"))
    statements = invocation.result["policyDocument"]["Statement"]
    assert [s["Effect"] for s in statements] == ["Deny"]
    assert invocation.metric_namespaces() == {"GptAssistant/dev"}


def test_default_answers_an_unknown_action_with_its_frame(stage: DeployedStage) -> None:
    invocation = stage.invoke("default.handler", websocket_event("$default", {"action": "fly"}, api_id=API_ID))
    assert json.loads(invocation.result["body"])["code"] == "unknown_action"


def test_connect_and_disconnect_record_the_connection(stage: DeployedStage) -> None:
    table = stage.environment("connect.handler")["TABLE_NAME"]
    connected = stage.invoke("connect.handler", websocket_event("$connect", user="dora", connection="conn-d1"))
    assert connected.result == {"statusCode": 200}
    items = stage.client("dynamodb").scan(TableName=table)["Items"]
    assert any("conn-d1" in json.dumps(item) for item in items)
    disconnected = stage.invoke("disconnect.handler", websocket_event("$disconnect", user="dora", connection="conn-d1"))
    assert disconnected.result == {"statusCode": 200}
    items = stage.client("dynamodb").scan(TableName=table)["Items"]
    assert not any("conn-d1" in json.dumps(item) for item in items)


def test_commands_answer_ping(stage: DeployedStage) -> None:
    invocation = stage.invoke("commands.handler", websocket_event("ping", {"action": "ping"}, api_id=API_ID))
    assert json.loads(invocation.result["body"])["type"] == "pong"


def test_a_message_is_accepted_and_a_stage_without_a_model_key_says_so(stage: DeployedStage) -> None:
    # Carol has no open connection, so the worker's error frame goes nowhere (no @connections call leaves the host);
    # what the user would have seen is recorded on the message.
    accepted = stage.invoke(
        "send_message.handler",
        websocket_event("sendMessage", {"action": "sendMessage", "message": "Hello"}, user="carol", api_id=API_ID),
    )
    frame = json.loads(accepted.result["body"])
    assert frame["type"] == "accepted"
    sqs = stage.client("sqs")
    received = sqs.receive_message(
        QueueUrl=_queue_url(stage), MaxNumberOfMessages=1, AttributeNames=["All"], WaitTimeSeconds=0
    )["Messages"]
    assert len(received) == 1
    record = {
        "messageId": received[0]["MessageId"],
        "receiptHandle": received[0]["ReceiptHandle"],
        "body": received[0]["Body"],
        "attributes": received[0]["Attributes"],
        "messageAttributes": {},
        "md5OfBody": received[0]["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{_queue_url(stage).rsplit('/', 1)[-1]}",
        "awsRegion": REGION,
    }

    invocation = stage.invoke("worker.handler", {"Records": [record]})

    # Not retried: an operator's step is missing, and another attempt cannot supply it.
    assert invocation.result == {"batchItemFailures": []}
    table = stage.environment("worker.handler")["TABLE_NAME"]
    items = stage.client("dynamodb").scan(TableName=table)["Items"]
    mine = [item for item in items if item.get("messageId", {}).get("S") == frame["messageId"]]
    # The message record and the conversation turn it ended as (failed, with the user's text).
    assert sorted(m["sk"]["S"].split("#")[0] + ":" + m.get("errorCode", {}).get("S", "") for m in mine) == [
        "MSG:model_not_configured",
        "TURN:model_not_configured",
    ]
    fixes = [r.get("fix") for r in invocation.log_records() if r.get("fix")]
    assert fixes == [".venv/bin/python -m scripts.set_openai_key --stage dev"]
    assert "GptAssistant/dev" in invocation.metric_namespaces()
