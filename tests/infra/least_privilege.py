"""The least-privilege proof's evaluator: recorded AWS calls against each function's policies in the template.

Each recorded call (:mod:`scripts.local_stack.lambda_runtime.aws_calls`) becomes the IAM actions and resource ARNs
AWS authorizes it by:

- DynamoDB: the operation's own action on the table's ARN, on ``table/NAME/index/INDEX`` for a ``Query`` or
  ``Scan`` of an index; ``TransactWriteItems`` is authorized per item (``Put`` → ``PutItem``, ``Update`` →
  ``UpdateItem``, ``Delete`` → ``DeleteItem``, ``ConditionCheck`` → ``ConditionCheckItem``) on each item's table,
  ``TransactGetItems`` as ``GetItem`` per item; ``BatchGetItem``/``BatchWriteItem`` as themselves on each table
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
- SQS and Secrets Manager: ``sqs:<Operation>`` on the queue's ARN, ``secretsmanager:<Operation>`` on the secret's.
- The API Gateway management API: ``execute-api:ManageConnections`` on
  ``arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/<POST|GET|DELETE>/@connections/{connectionId}`` for
  ``PostToConnection``/``GetConnection``/``DeleteConnection``
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html).
- Cognito's token-authorized operations (``GetUser``, ``GlobalSignOut``, ``RevokeToken``, ``InitiateAuth``): no
  IAM; the access or refresh token is the authorization (the revocation check's ``GetUser`` is recorded and needs
  no statement). They are listed in ``Verdict.unauthorized_by_iam``.
- Bedrock: its SigV4 model calls go through the ``openai`` SDK's own provider, not botocore, so they are not recorded
  here; tests/infra/test_bedrock_least_privilege.py records them at a SigV4 front of the offline model and proves
  the Bedrock stages' grants both ways, so they are exempted below.

A call's resource is identified through the function's environment: the recorder notes which variables hold the
table name, queue URL, secret id or callback URL it used, and the template wires the same variable to a ``Ref``
(or ``Fn::Join``) of the resource. Intrinsics of the template's own resources resolve with a fixed account and region.
Actions match with IAM's wildcards (case-insensitive), resources with ARN globbing (``*`` and ``?``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.wiring import BUCKET

REGION = "us-east-1"
ACCOUNT = "123456789012"
PARTITION = "aws"

#: Cognito user-pool operations authorized by a token, not by IAM.
TOKEN_AUTHORIZED = {("cognito-idp", op) for op in ("GetUser", "GlobalSignOut", "RevokeToken", "InitiateAuth")}
_TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
#: S3 object operations and the IAM action each is authorized as (HeadObject and a ranged GET are s3:GetObject).
_OBJECT_ACTIONS = {
    "GetObject": "GetObject",
    "HeadObject": "GetObject",
    "PutObject": "PutObject",
    "DeleteObject": "DeleteObject",
}
_CONNECTION_METHODS = {"PostToConnection": "POST", "GetConnection": "GET", "DeleteConnection": "DELETE"}


@dataclass(frozen=True)
class Exemption:
    """A grant no recorded call uses, kept on purpose."""

    #: ``module.handler`` glob.
    function: str
    #: IAM action glob.
    action: str
    reason: str


#: Grants used by someone other than the function's code, or only on a path the suites cannot take.
EXEMPTIONS: tuple[Exemption, ...] = (
    Exemption("*", "logs:*", "the Lambda service writes the function's log stream with its role"),
    Exemption("*", "xray:*", "the Lambda service sends the active-tracing segments with the function's role"),
    *(
        Exemption(
            "worker.handler",
            f"sqs:{action}",
            "Lambda's event source mapping polls the queue and deletes processed records with the worker's role"
            " (the local stack's poller plays it, outside any function, so it is not recorded)",
        )
        for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes", "GetQueueUrl")
    ),
    Exemption(
        "*",
        "bedrock*",
        "model calls are SigV4-signed by the openai SDK's Bedrock provider over httpx, not botocore: not recorded"
        " here; tests/infra/test_bedrock_least_privilege.py proves them both ways instead",
    ),
)


@dataclass(frozen=True)
class Requirement:
    action: str
    resource: str
    #: The call it comes from, as a person reads it.
    call: str
    #: Checked against the stage whose assistant definition names the resource (an MCP server's token secret),
    #: rather than against the template's own environment.
    by_definition: bool = False


@dataclass(frozen=True)
class Grant:
    action: str
    resource: str
    statement: int
    #: The statement as the template has it (before resolution), for the failure message.
    source: str


@dataclass
class Verdict:
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    #: Calls no IAM policy governs, with why.
    unauthorized_by_iam: list[str] = field(default_factory=list)


def glob_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one; nothing else is special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


class Arns:
    """The template's intrinsics resolved to the strings CloudFormation would produce, for a fixed account/region."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.resources: dict[str, dict[str, Any]] = template["Resources"]

    def _props(self, logical_id: str) -> dict[str, Any]:
        props: dict[str, Any] = self.resources[logical_id].get("Properties", {})
        return props

    def _type(self, logical_id: str) -> str:
        return str(self.resources[logical_id]["Type"])

    def _name(self, logical_id: str, prop: str) -> str:
        value = self._props(logical_id).get(prop)
        return self.resolve(value) if value is not None else logical_id

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "stack",
        }
        if name in pseudo:
            return pseudo[name]
        kind = self._type(name)
        if kind == "AWS::DynamoDB::Table":
            return self._name(name, "TableName")
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.queue_name(name)}"
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{self._name(name, 'Name')}-AbCdEf"
        if kind == "AWS::ApiGatewayV2::Api":
            return name.lower()[:10]
        if kind == "AWS::ApiGatewayV2::Stage":
            return self._name(name, "StageName")
        if kind in ("AWS::SNS::Topic",):
            return f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{name}"
        return name

    def queue_name(self, logical_id: str) -> str:
        props = self._props(logical_id)
        if "QueueName" in props:
            return self.resolve(props["QueueName"])
        return logical_id + (".fifo" if props.get("FifoQueue") else "")

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self._type(logical_id)
        prefix = f"arn:{PARTITION}"
        if kind == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"{prefix}:dynamodb:{REGION}:{ACCOUNT}:table/{self.ref(logical_id)}"
        if kind == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            return f"{prefix}:dynamodb:{REGION}:{ACCOUNT}:table/{self.ref(logical_id)}/stream/2026-01-01T00:00:00.000"
        if kind == "AWS::SQS::Queue":
            name = self.queue_name(logical_id)
            return {"Arn": f"{prefix}:sqs:{REGION}:{ACCOUNT}:{name}", "QueueName": name}.get(
                attribute, self.ref(logical_id)
            )
        if kind == "AWS::Logs::LogGroup" and attribute == "Arn":
            return f"{prefix}:logs:{REGION}:{ACCOUNT}:log-group:{self._name(logical_id, 'LogGroupName')}:*"
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"{prefix}:s3:::{self._name(logical_id, 'BucketName')}"
        if kind == "AWS::KMS::Key" and attribute == "Arn":
            return f"{prefix}:kms:{REGION}:{ACCOUNT}:key/{logical_id}"
        service = kind.split("::")[1].lower()
        return f"{prefix}:{service}:{REGION}:{ACCOUNT}:{logical_id}/{attribute}"

    def resolve(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                return self.ref(argument)
            if function == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(logical_id, attribute)
            if function == "Fn::Join":
                separator, parts = argument
                return str(separator).join(self.resolve(part) for part in parts)
            if function == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub(m.group(1), variables), text)
            if function == "Fn::Select":
                index, values = argument
                return self.resolve(values[int(index)])
        raise AssertionError(f"the proof cannot resolve {value!r}; teach tests/infra/least_privilege.Arns about it")

    def _sub(self, name: str, variables: dict[str, Any]) -> str:
        if name in variables:
            return self.resolve(variables[name])
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return self.get_att(logical_id, attribute)
        return self.ref(name)


class FunctionPolicy:
    """One function of the template: its resolved environment and the grants of its role."""

    def __init__(self, template: dict[str, Any], arns: Arns, handler: str) -> None:
        self.handler = handler
        matches = [
            resource
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::Lambda::Function" and resource["Properties"].get("Handler") == handler
        ]
        assert len(matches) == 1, f"expected one function with handler {handler}, found {len(matches)}"
        properties = matches[0]["Properties"]
        self.environment_source: dict[str, Any] = properties.get("Environment", {}).get("Variables", {})
        self.environment = {name: arns.resolve(value) for name, value in self.environment_source.items()}
        role_id = properties["Role"]["Fn::GetAtt"][0]
        role = template["Resources"][role_id]["Properties"]
        assert not role.get("ManagedPolicyArns"), f"{handler}: managed policies cannot be evaluated here"
        statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
        statements += [
            statement
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        ]
        self.grants: list[Grant] = []
        self.denies: list[Grant] = []
        for number, statement in enumerate(statements):
            unsupported = {"NotAction", "NotResource", "Condition", "NotPrincipal"} & set(statement)
            assert not unsupported, f"{handler}: statement {number} uses {unsupported}; teach the proof about it"
            actions = _as_list(statement["Action"])
            resources = [arns.resolve(r) for r in _as_list(statement["Resource"])]
            source = json.dumps(statement, sort_keys=True)
            target = self.grants if statement.get("Effect", "Allow") == "Allow" else self.denies
            target.extend(Grant(a, r, number, source) for a in actions for r in resources)

    def allows(self, requirement: Requirement) -> bool:
        def matches(grant: Grant) -> bool:
            return glob_match(grant.action, requirement.action, case_sensitive=False) and glob_match(
                grant.resource, requirement.resource
            )

        return any(matches(g) for g in self.grants) and not any(matches(d) for d in self.denies)


def load_records(directory: Path) -> list[dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("calls-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.setdefault(line, json.loads(line))
    return list(records.values())


def requirements(record: dict[str, Any], policy: FunctionPolicy, arns: Arns) -> list[Requirement] | str:
    """What AWS checks for one recorded call, or why the proof cannot tell (a failure in itself)."""
    service, operation = record["service"], record["operation"]
    found = record["resources"]
    call = f"{service}:{operation}"
    if (service, operation) in TOKEN_AUTHORIZED:
        return []
    if "unreadable" in found:
        return f"{call}: the recorder could not read the call ({found['unreadable']})"

    def resource_of(names: list[str], kind: str, *, by_name: str | None = None) -> str | None:
        """The template's resource of ``kind`` that one of the variables holding the call's resource names (several
        variables may hold the same string in a test; the one the template wires to such a resource counts)."""
        for name in names:
            value = policy.environment.get(name)
            if value is None:
                continue
            for logical_id, resource in arns.resources.items():
                if resource["Type"] != kind:
                    continue
                if value == arns.ref(logical_id) or (by_name and value == resource.get("Properties", {}).get(by_name)):
                    return logical_id
        return None

    if service == "dynamodb":
        needed: list[Requirement] = []
        for item in found["items"]:
            table = resource_of(item["env"], "AWS::DynamoDB::Table")
            if table is None:
                return (
                    f"{call} on table {item['table']!r}: no variable of the function's template environment names a"
                    f" table of the template (variables holding it in the test: {item['env'] or 'none'})"
                )
            arn = arns.get_att(table, "Arn")
            if item.get("index"):
                arn += f"/index/{item['index']}"
            action = _TRANSACT_ITEM_ACTIONS.get(item["kind"], item["kind"])
            detail = f"{item['kind']} item" if item["kind"] != operation else operation
            needed.append(Requirement(f"dynamodb:{action}", arn, f"{call} ({detail} on {arn})"))
        return needed
    if service == "sqs":
        queue = resource_of(found["queue"]["env"], "AWS::SQS::Queue")
        if queue is None:
            return f"{call} on {found['queue']['url']!r}: no variable of the function's template environment names it"
        arn = arns.get_att(queue, "Arn")
        return [Requirement(f"sqs:{operation}", arn, f"{call} on {arn}")]
    if service == "s3" and operation in (*_OBJECT_ACTIONS, "CreateBucket"):
        target = found["object"]
        names = [policy.environment[name] for name in target["env"] if name in policy.environment]
        buckets = {
            arns.resolve(resource["Properties"]["BucketName"])
            for resource in arns.resources.values()
            if resource["Type"] == "AWS::S3::Bucket" and "BucketName" in resource.get("Properties", {})
        }
        bucket = next((name for name in names if name in buckets), None)
        if bucket is None:
            return f"{call} on bucket {target['bucket']!r}: no variable of the function's template environment names it"
        if operation == "CreateBucket":
            # botocore's generate_presigned_post resolves its endpoint through the CreateBucket model and sends
            # nothing; the POST it signs is authorized as the signer's s3:PutObject on the key its policy fixes,
            # which is always under uploads/ (assistant.attachments.upload_key).
            arn = f"arn:{PARTITION}:s3:::{bucket}/{BUCKET.upload_prefix}{{key}}"
            return [Requirement("s3:PutObject", arn, f"a presigned POST ({call}) on {arn}")]
        # A presigned GET is recorded as GetObject too (botocore builds its parameters the same way).
        arn = f"arn:{PARTITION}:s3:::{bucket}/{target['key']}"
        return [Requirement(f"s3:{_OBJECT_ACTIONS[operation]}", arn, f"{call} on {arn}")]
    if service == "secretsmanager":
        secret = resource_of(found["secret"]["env"], "AWS::SecretsManager::Secret", by_name="Name")
        if secret is None and found["secret"]["id"] and not found["secret"]["id"].startswith("arn:"):
            # Not a variable's: a secret the assistant definition names (an MCP server's token), granted by name.
            arn = f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{found['secret']['id']}-AbCdEf"
            return [Requirement(f"secretsmanager:{operation}", arn, f"{call} on {arn}", by_definition=True)]
        if secret is None:
            return f"{call} on {found['secret']['id']!r}: no variable of the function's template environment names it"
        arn = arns.ref(secret)
        return [Requirement(f"secretsmanager:{operation}", arn, f"{call} on {arn}")]
    if service == "apigatewaymanagementapi" and operation in _CONNECTION_METHODS:
        urls = [policy.environment[name] for name in found["api"]["env"] if name in policy.environment]
        parsed = next(
            (m for url in urls if (m := re.fullmatch(r"https://([^.]+)\.execute-api\.[^/]+/([^/]+)/?", url))), None
        )
        if parsed is None:
            return (
                f"{call} through {found['api']['endpoint']!r}: no variable of the function's template environment"
                f" names it as an API Gateway stage URL ({urls})"
            )
        api_id, stage = parsed.groups()
        arn = (
            f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:{api_id}/{stage}/{_CONNECTION_METHODS[operation]}"
            f"/@connections/{found['api']['connection']}"
        )
        return [Requirement("execute-api:ManageConnections", arn, f"{call} on {arn}")]
    return f"{call}: the proof has no IAM mapping for it; add one in tests/infra/least_privilege.requirements"


def definition_secrets(records: Iterable[dict[str, Any]]) -> list[str]:
    """Secrets the calls fetched by a name no variable holds: those an assistant definition names."""
    return sorted(
        {
            r["resources"]["secret"]["id"]
            for r in records
            if r["service"] == "secretsmanager" and not r["resources"]["secret"]["env"]
        }
    )


def evaluate(
    template: dict[str, Any],
    records: Iterable[dict[str, Any]],
    handlers: Iterable[str],
    exemptions: tuple[Exemption, ...] = EXEMPTIONS,
    definition_template: dict[str, Any] | None = None,
) -> Verdict:
    """Every recorded call against its function's grants, and every grant against the calls (see the module doc).

    ``definition_template``: the same stage deployed with an assistant definition that names
    :func:`definition_secrets` (what a stage with MCP servers that take a token deploys); calls to those secrets
    are checked against it.
    """
    arns = Arns(template)
    definition_arns = Arns(definition_template) if definition_template is not None else None
    verdict = Verdict()
    by_function: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_function.setdefault(record["function"], []).append(record)
    handlers = list(handlers)
    for stray in sorted(set(by_function) - set(handlers)):
        verdict.missing.append(f"{stray}: recorded calls of a function the template does not have")
    for handler in handlers:
        policy = FunctionPolicy(template, arns, handler)
        used: list[Requirement] = []
        for record in by_function.get(handler, []):
            needed = requirements(record, policy, arns)
            if isinstance(needed, str):
                verdict.missing.append(f"{handler}: {needed}")
                continue
            if not needed:
                verdict.unauthorized_by_iam.append(f"{handler}: {record['service']}:{record['operation']}")
            for requirement in needed:
                checked_by = policy
                if requirement.by_definition:
                    if definition_template is None or definition_arns is None:
                        verdict.missing.append(f"{handler}: {requirement.call}: no stage with a definition to check")
                        continue
                    checked_by = FunctionPolicy(definition_template, definition_arns, handler)
                else:
                    used.append(requirement)
                if not checked_by.allows(requirement):
                    verdict.missing.append(
                        f"{handler}: {requirement.call} needs {requirement.action} on {requirement.resource};"
                        " no statement of its role allows it"
                        + (" (in a stage whose definition names the secret)" if requirement.by_definition else "")
                    )
        for grant in policy.grants:
            if any(
                glob_match(grant.action, r.action, case_sensitive=False) and glob_match(grant.resource, r.resource)
                for r in used
            ):
                continue
            if any(
                glob_match(e.function, handler) and glob_match(e.action, grant.action, case_sensitive=False)
                for e in exemptions
            ):
                continue
            verdict.unused.append(
                f"{handler}: grants {grant.action} on {grant.resource} (statement {grant.statement}: {grant.source}),"
                " which no recorded call uses; remove it, or exempt it in EXEMPTIONS with the reason"
            )
    verdict.missing = sorted(set(verdict.missing))
    verdict.unused = sorted(set(verdict.unused))
    return verdict


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
