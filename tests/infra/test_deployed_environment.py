"""Every function of the synthesized template, run the way Lambda runs it: from its own assets, under the runtime's
Python.

A deployed stage once refused every connection: the authorizer's environment had no metrics namespace, so
Powertools' metrics flush raised on every invocation, while the tests and the local stack gave every handler a
kinder environment than the template's. Here each function's handler is imported and invoked in a fresh CPython 3.13
interpreter (the runtime's) whose environment is exactly the template's ``Environment.Variables`` (intrinsics
resolved to the resources below), plus what the Lambda runtime sets, and nothing from the test process. Its import
path is exactly what Lambda gives it: its code asset (``/var/task``), the contents of its layers in the template
(``/opt/python``), built for this machine by the deployed assets' bundlers and pins (``tests/infra/host_assets.py``),
and the runtime's boto3; no site-packages. So a module missing from a layer, or code that breaks only on 3.13, fails
here. Metrics are on, as in Lambda.

AWS calls go to a moto server through the SDK's endpoint setting (``AWS_ENDPOINT_URL``, the harness's redirect,
not a variable of any function). Resources are created in moto from the template's own properties; the model's
secret is created without a value, exactly as the stack creates it.

What this cannot catch: IAM (moto allows every call; ``test_least_privilege.py`` proves the grants against the
calls), and the arm64 wheels themselves (``test_bundling.py`` checks the deployed layers' contents).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Template

from infra.stack import AssistantStack
from scripts.local_stack.aws.moto_server import MotoServer
from scripts.local_stack.lambda_runtime.deployed import runtime_provided
from tests.events import authorizer_event, websocket_event
from tests.infra import host_assets
from tests.infra.conftest import resources

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
    #: CPython 3.13, the runtime's interpreter.
    python: Path
    assets: host_assets.HostAssets
    #: The synth's output directory (a layer that is not bundled is its staged asset there).
    outdir: Path
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

    def import_path(self, handler: str) -> list[str]:
        """What Lambda puts on ``sys.path`` for the function: its code (``/var/task``), its layers' ``/opt/python``
        (a later layer's files over an earlier one's), the runtime's boto3. Nothing else."""
        function = self.function(handler)
        layers: list[str] = []
        for layer in function["Properties"].get("Layers", []):
            layers.insert(0, str(self._layer_python(layer["Ref"])))
        runtime = runtime_provided(self.workdir)
        return [str(self.assets.handlers), *layers, str(runtime)]

    def _layer_python(self, logical_id: str) -> Path:
        if logical_id.startswith("LayersDependencies"):
            return self.assets.dependencies
        if logical_id.startswith("LayersAssistantPackage"):
            return self.assets.package
        metadata = self.template["Resources"][logical_id].get("Metadata", {})
        if metadata.get("aws:asset:path") and not metadata.get("aws:asset:is-bundled", False):
            return self.outdir / metadata["aws:asset:path"] / "python"
        raise AssertionError(f"layer {logical_id} has no host build; teach tests/infra/host_assets about it")

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
            "LAMBDA_TASK_ROOT": str(self.assets.handlers),
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin",
            # /var/task, /opt/python and the runtime's boto3, exactly (the interpreter runs without site-packages).
            "PYTHONPATH": os.pathsep.join(self.import_path(handler)),
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
            # -S: no site-packages, the layers are the only packages; -s: no user site; -B: Lambda's file system is
            # read-only, so nothing is written next to the runtime's boto3 (a symlink into this venv) either.
            [str(self.python), "-S", "-s", "-B", "-c", _RUNNER, handler, str(out)],
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
def lambda_python() -> Path:
    """The runtime's CPython 3.13: CI must run these tests, so only a machine without it (and not CI) skips them."""
    python = host_assets.lambda_python()
    if python is None:
        message = "no CPython 3.13 (the Lambda runtime's) on this machine: `pyenv install 3.13` or set LAMBDA_PYTHON"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


@pytest.fixture(scope="module")
def stage(
    dev: tuple[AssistantStack, Template], lambda_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeployedStage]:
    stack, template = dev
    assets = host_assets.build()
    moto = MotoServer()
    endpoint = moto.start()
    try:
        deployed = DeployedStage(
            template=dict(template.to_json()),
            endpoint=endpoint,
            workdir=tmp_path_factory.mktemp("lambda"),
            python=lambda_python,
            assets=assets,
            outdir=Path(str(stack.node.root.outdir)),  # type: ignore[attr-defined]
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


#: Where each module comes from, printed by the function's own interpreter with its own import path.
_ORIGINS = """
import json, sys
names = ("worker", "assistant", "pydantic_core", "aws_lambda_powertools", "boto3")
for name in names:
    __import__(name)
origins = {name: sys.modules[name].__file__ for name in names}
print(json.dumps({"python": list(sys.version_info[:2]), "path": sys.path, **origins}))
"""


def _run(stage: DeployedStage, handler: str, script: str, path: list[str]) -> subprocess.CompletedProcess[str]:
    environment = stage.environment(handler) | {"PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run(
        [str(stage.python), "-S", "-s", "-B", "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_function_imports_only_from_its_assets_under_the_runtimes_python(stage: DeployedStage) -> None:
    completed = _run(stage, "worker.handler", _ORIGINS, stage.import_path("worker.handler"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    origins = json.loads(completed.stdout.splitlines()[-1])
    assert origins["python"] == [3, 13]
    assert Path(origins["worker"]).is_relative_to(stage.assets.handlers)
    assert Path(origins["assistant"]).is_relative_to(stage.assets.package)
    for dependency in ("pydantic_core", "aws_lambda_powertools"):
        assert Path(origins[dependency]).is_relative_to(stage.assets.dependencies), dependency
    # No site-packages of any interpreter: the layers and the runtime's boto3 are all there is.
    assert not [entry for entry in origins["path"] if "site-packages" in entry]


def test_a_module_missing_from_a_layer_fails_the_import(stage: DeployedStage, tmp_path: Path) -> None:
    # The dependency layer without Powertools, as if requirements/runtime.txt had dropped it.
    mutant = tmp_path / "dependencies"
    mutant.mkdir()
    for entry in stage.assets.dependencies.iterdir():
        if not entry.name.startswith("aws_lambda_powertools"):
            (mutant / entry.name).symlink_to(entry)
    path = [str(mutant) if p == str(stage.assets.dependencies) else p for p in stage.import_path("worker.handler")]
    assert str(mutant) in path

    completed = _run(stage, "connect.handler", "import connect", path)

    assert completed.returncode != 0
    assert "No module named 'aws_lambda_powertools'" in completed.stderr
