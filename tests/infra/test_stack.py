"""What the synthesized stack must contain, asserted against ``assistant.wiring`` rather than repeated literals."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from aws_cdk.assertions import Template

from assistant.route_table import ROUTE_SELECTION_EXPRESSION, ROUTES
from assistant.wiring import (
    AUTH_QUERY_PARAMETER,
    AUTHORIZER,
    FUNCTIONS,
    QUEUE,
    TABLE,
    WORKER,
    Env,
)
from infra.functions import OPTIONAL_ENV
from infra.names import OutputKey, openai_secret_name
from infra.stack import AssistantStack
from tests.infra.conftest import SKIP_BUNDLING, function_by_handler, only, resources

API_GATEWAY_INTEGRATION_LIMIT_SECONDS = 29


def _policy_statements_of(template: Template, function_logical_id: str) -> list[dict[str, Any]]:
    function = template.find_resources("AWS::Lambda::Function")[function_logical_id]
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements: list[dict[str, Any]] = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _integration_function(template: Template, route: dict[str, Any]) -> str:
    integration_id = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
    integration = template.find_resources("AWS::ApiGatewayV2::Integration")[integration_id]
    uri = json.dumps(integration["Properties"]["IntegrationUri"])
    functions = [fid for fid in resources(template, "AWS::Lambda::Function") if f'"{fid}"' in uri]
    assert len(functions) == 1, uri
    return functions[0]


def test_routes_are_exactly_the_wired_routes_with_their_handlers(dev_template: Template) -> None:
    routes = {r["Properties"]["RouteKey"]: r for r in resources(dev_template, "AWS::ApiGatewayV2::Route").values()}
    assert sorted(routes) == sorted(route.route_key for route in ROUTES)
    for spec in ROUTES:
        expected_function, _ = function_by_handler(dev_template, spec.function.handler)
        assert _integration_function(dev_template, routes[spec.route_key]) == expected_function, spec.route_key
    _, api = only(dev_template, "AWS::ApiGatewayV2::Api")
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == ROUTE_SELECTION_EXPRESSION


def test_route_responses_exist_exactly_for_routes_that_answer(dev_template: Template) -> None:
    routes = resources(dev_template, "AWS::ApiGatewayV2::Route")
    responses = resources(dev_template, "AWS::ApiGatewayV2::RouteResponse")
    answered = {routes[r["Properties"]["RouteId"]["Ref"]]["Properties"]["RouteKey"] for r in responses.values()}
    assert answered == {route.route_key for route in ROUTES if route.returns_response}
    assert {r["Properties"]["RouteResponseKey"] for r in responses.values()} == {"$default"}
    assert "sendMessage" in answered


def test_connect_alone_is_authorized_by_the_authorizer_reading_the_auth_query_parameter(
    dev_template: Template,
) -> None:
    authorizer_id, authorizer = only(dev_template, "AWS::ApiGatewayV2::Authorizer")
    assert authorizer["Properties"]["AuthorizerType"] == "REQUEST"
    assert authorizer["Properties"]["IdentitySource"] == [f"route.request.querystring.{AUTH_QUERY_PARAMETER}"]
    authorizer_function, _ = function_by_handler(dev_template, AUTHORIZER.handler)
    assert authorizer_function in json.dumps(authorizer["Properties"]["AuthorizerUri"])
    for route in resources(dev_template, "AWS::ApiGatewayV2::Route").values():
        properties = route["Properties"]
        if properties["RouteKey"] == "$connect":
            assert properties["AuthorizationType"] == "CUSTOM"
            assert properties["AuthorizerId"] == {"Ref": authorizer_id}
        else:
            assert properties["AuthorizationType"] == "NONE"


def test_queue_is_high_throughput_fifo_with_encrypted_fifo_dead_letter_queue(dev_template: Template) -> None:
    queues = resources(dev_template, "AWS::SQS::Queue")
    main = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(main) == 1
    properties = main[0]["Properties"]
    assert properties["FifoQueue"] is True
    assert properties["DeduplicationScope"] == "messageGroup"
    assert properties["FifoThroughputLimit"] == "perMessageGroupId"
    assert properties["VisibilityTimeout"] >= QUEUE.visibility_timeout_factor * WORKER.timeout_seconds
    assert properties["SqsManagedSseEnabled"] is True
    assert properties["RedrivePolicy"]["maxReceiveCount"] == QUEUE.max_receive_count
    dlq_id = properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    dlq = queues[dlq_id]["Properties"]
    assert dlq["FifoQueue"] is True
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == QUEUE.dlq_retention_days * 24 * 3600
    alarms = resources(dev_template, "AWS::CloudWatch::Alarm").values()
    on_dlq = [a for a in alarms if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"]
    assert len(on_dlq) == 1
    assert on_dlq[0]["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [dlq_id, "QueueName"]}
    assert on_dlq[0]["Properties"]["Threshold"] == 1


def test_both_queues_refuse_plain_http(dev_template: Template) -> None:
    policies = resources(dev_template, "AWS::SQS::QueuePolicy")
    denied = {
        json.dumps(statement["Resource"])
        for policy in policies.values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    }
    assert len(denied) == 2


def test_worker_consumes_the_queue_and_reports_batch_item_failures(dev_template: Template) -> None:
    worker_id, _ = function_by_handler(dev_template, WORKER.handler)
    _, mapping = only(dev_template, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["FunctionName"] == {"Ref": worker_id}
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["BatchSize"] == QUEUE.batch_size
    queue_id = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
    assert "RedrivePolicy" in dev_template.find_resources("AWS::SQS::Queue")[queue_id]["Properties"]


def test_worker_callback_url_is_the_stage_it_may_post_to(dev_template: Template) -> None:
    worker_id, worker = function_by_handler(dev_template, WORKER.handler)
    stage_id, stage = only(dev_template, "AWS::ApiGatewayV2::Stage")
    api_ref = stage["Properties"]["ApiId"]
    stage_name = stage["Properties"]["StageName"]

    callback = worker["Properties"]["Environment"]["Variables"][Env.CALLBACK_URL.value]
    parts = callback["Fn::Join"][1]
    assert parts[0] == "https://"
    assert parts[1] == api_ref
    assert parts[-1] == f"/{stage_name}"

    grants = [
        s for s in _policy_statements_of(dev_template, worker_id) if "execute-api:ManageConnections" in _actions(s)
    ]
    assert len(grants) == 1
    resource = grants[0]["Resource"]["Fn::Join"][1]
    assert api_ref in resource
    assert resource[-1] == f"/{stage_name}/POST/@connections/*"
    assert stage_id  # the stage exists in this same template: one deploy, no second pass


def test_connections_are_posted_to_and_closed_only_by_the_functions_that_declare_it(dev_template: Template) -> None:
    for spec in FUNCTIONS:
        function_id, _ = function_by_handler(dev_template, spec.handler)
        statements = [
            s
            for s in _policy_statements_of(dev_template, function_id)
            if "execute-api:ManageConnections" in _actions(s)
        ]
        resources_json = json.dumps([s["Resource"] for s in statements])
        assert ("/POST/@connections/*" in resources_json) == (spec.posts_to_connections or spec.closes_connections), (
            spec.name
        )
        # Closing a connection (DELETE) only for the routes that end a connection whose token expired.
        assert ("/DELETE/@connections/*" in resources_json) == spec.closes_connections, spec.name
    assert WORKER.posts_to_connections
    assert not WORKER.closes_connections


def test_no_iam_statement_uses_wildcard_actions(dev_template: Template) -> None:
    documents = [p["Properties"]["PolicyDocument"] for p in resources(dev_template, "AWS::IAM::Policy").values()]
    for role in resources(dev_template, "AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"], "managed policies grant more than a function uses"
        documents.extend(p["PolicyDocument"] for p in role["Properties"].get("Policies", []))
    statements = [s for d in documents for s in d["Statement"]]
    assert statements
    for statement in statements:
        assert "NotAction" not in statement
        for action in _actions(statement):
            assert "*" not in action, statement


def test_each_function_gets_only_the_permissions_its_spec_declares(dev_template: Template) -> None:
    secret_id, _ = only(dev_template, "AWS::SecretsManager::Secret")
    table_id, _ = only(dev_template, "AWS::DynamoDB::Table")
    for spec in FUNCTIONS:
        function_id, _ = function_by_handler(dev_template, spec.handler)
        statements = _policy_statements_of(dev_template, function_id)
        actions = {a for s in statements for a in _actions(s)}
        secret_statements = [s for s in statements if "secretsmanager:GetSecretValue" in _actions(s)]
        assert bool(secret_statements) == spec.reads_openai_secret, spec.name
        for statement in secret_statements:
            assert statement["Resource"] == {"Ref": secret_id}
        assert ("sqs:SendMessage" in actions) == spec.sends_to_queue, spec.name
        # Exactly the table actions the spec declares, on the table alone: no read/write bundles.
        table_statements = [s for s in statements if any(a.startswith("dynamodb:") for a in _actions(s))]
        assert {a for s in table_statements for a in _actions(s)} == set(spec.table_actions), spec.name
        for statement in table_statements:
            assert statement["Resource"] == {"Fn::GetAtt": [table_id, "Arn"]}, spec.name


def test_function_environment_is_exactly_what_wiring_declares(dev_template: Template) -> None:
    for spec in FUNCTIONS:
        _, function = function_by_handler(dev_template, spec.handler)
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        declared = {name.value for name in spec.env}
        assert set(variables) <= declared, f"{spec.name} gets undeclared variables {set(variables) - declared}"
        required = {name.value for name in spec.env if name not in OPTIONAL_ENV}
        assert required <= set(variables), f"{spec.name} misses {required - set(variables)}"
        assert variables[Env.SERVICE_NAME.value] == spec.name
    _, worker = function_by_handler(dev_template, WORKER.handler)
    variables = worker["Properties"]["Environment"]["Variables"]
    assert variables[Env.OPENAI_SECRET_NAME.value] == openai_secret_name("dev")
    assert variables[Env.MAX_RECEIVE_COUNT.value] == str(QUEUE.max_receive_count)


def test_functions_run_python_3_13_on_arm_with_json_logs_and_fitting_timeouts(dev_template: Template) -> None:
    route_functions = {route.function.name for route in ROUTES} | {AUTHORIZER.name}
    for spec in FUNCTIONS:
        _, function = function_by_handler(dev_template, spec.handler)
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.13"
        assert properties["Architectures"] == ["arm64"]
        assert properties["LoggingConfig"]["LogFormat"] == "JSON"
        assert len(properties["Layers"]) == 2
        assert properties["Timeout"] == spec.timeout_seconds
        if spec.name in route_functions:
            assert properties["Timeout"] <= API_GATEWAY_INTEGRATION_LIMIT_SECONDS, spec.name
    for log_group in resources(dev_template, "AWS::Logs::LogGroup").values():
        assert log_group["Properties"]["RetentionInDays"] == 7


def test_stage_throttles_and_logs_access_without_the_token(dev_template: Template) -> None:
    _, stage = only(dev_template, "AWS::ApiGatewayV2::Stage")
    properties = stage["Properties"]
    assert properties["StageName"] == "dev"
    assert properties["AutoDeploy"] is True
    assert properties["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert properties["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    log_format = properties["AccessLogSettings"]["Format"]
    fields = json.loads(log_format)
    assert {"$context.requestId", "$context.connectionId", "$context.routeKey", "$context.status"} <= set(
        fields.values()
    )
    lowered = log_format.lower()
    for leak in ("querystring", "request.", AUTH_QUERY_PARAMETER.lower() + "=", "header", "body"):
        assert leak not in lowered


def test_table_keys_ttl_and_recovery(dev_template: Template) -> None:
    _, table = only(dev_template, "AWS::DynamoDB::Table")
    properties = table["Properties"]
    assert properties["KeySchema"] == [
        {"AttributeName": TABLE.partition_key, "KeyType": "HASH"},
        {"AttributeName": TABLE.sort_key, "KeyType": "RANGE"},
    ]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": TABLE.ttl_attribute, "Enabled": True}
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_user_pool_and_public_client(dev_template: Template) -> None:
    _, pool = only(dev_template, "AWS::Cognito::UserPool")
    policy = pool["Properties"]["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12
    assert all(policy[k] for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"))
    assert pool["Properties"]["UsernameAttributes"] == ["email"]
    assert pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    _, client = only(dev_template, "AWS::Cognito::UserPoolClient")
    assert client["Properties"]["GenerateSecret"] is False
    # SRP and refresh only: no flow that sends the password (USER_PASSWORD_AUTH) or signs in as an admin.
    assert set(client["Properties"]["ExplicitAuthFlows"]) == {"ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}
    # No hosted sign-in is configured, so no OAuth flow and no redirect target (CDK's default is example.com).
    assert client["Properties"]["AllowedOAuthFlowsUserPoolClient"] is False
    assert "CallbackURLs" not in client["Properties"]
    assert "AllowedOAuthFlows" not in client["Properties"]


def test_a_stage_may_ask_for_the_hosted_sign_in(tmp_path: Any) -> None:
    import aws_cdk as cdk

    from infra.stage import StageConfig

    app = cdk.App(outdir=str(tmp_path), context=SKIP_BUNDLING)
    stage = replace(StageConfig.for_stage("dev"), hosted_sign_in_callback_urls=("https://chat.example.org/",))
    template = Template.from_stack(AssistantStack(app, stage=stage))
    _, client = only(template, "AWS::Cognito::UserPoolClient")
    assert client["Properties"]["AllowedOAuthFlows"] == ["code"]
    assert client["Properties"]["CallbackURLs"] == ["https://chat.example.org/"]


def test_the_model_key_secret_is_created_without_a_value(dev_template: Template) -> None:
    """A generated value would look like a key; an empty secret lets the worker answer `model_not_configured`."""
    _, secret = only(dev_template, "AWS::SecretsManager::Secret")
    assert "GenerateSecretString" not in secret["Properties"]
    assert "SecretString" not in secret["Properties"]


def test_the_account_logging_setting_waits_for_the_api_and_survives_a_destroy(dev_template: Template) -> None:
    account_id, account = only(dev_template, "AWS::ApiGateway::Account")
    api_id, _ = only(dev_template, "AWS::ApiGatewayV2::Api")
    # In an account that never had an API Gateway resource, the setting fails unless an API exists first.
    assert api_id in account["DependsOn"]
    _, stage = only(dev_template, "AWS::ApiGatewayV2::Stage")
    assert account_id in stage["DependsOn"]
    # The role is retained with its permissions inline: a separate AWS::IAM::Policy would be deleted by a destroy
    # and leave the account setting pointing at a role that can no longer write logs.
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    role = dev_template.to_json()["Resources"][role_id]
    assert role["DeletionPolicy"] == "Retain"
    assert account["DeletionPolicy"] == "Retain"
    inline_actions = {
        a for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"] for a in s["Action"]
    }
    assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= inline_actions
    attached = [
        policy
        for policy in resources(dev_template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"].get("Roles", [])
    ]
    assert attached == []


def test_outputs_carry_the_names_scripts_read(dev: tuple[AssistantStack, Template]) -> None:
    stack, template = dev
    outputs = template.find_outputs("*")
    assert set(OutputKey.ALL) <= set(outputs)
    assert outputs[OutputKey.OPENAI_SECRET_NAME]["Value"] == openai_secret_name("dev")
    assert outputs[OutputKey.REGION]["Value"] == {"Ref": "AWS::Region"}
    assert stack.stack_name == "GptAssistant-dev"


def test_prod_retains_data_and_dev_does_not(dev_template: Template, prod_template: Template) -> None:
    retained_types = (
        "AWS::DynamoDB::Table",
        "AWS::Cognito::UserPool",
        "AWS::SecretsManager::Secret",
        "AWS::Logs::LogGroup",
    )
    for resource_type in retained_types:
        prod_template.all_resources(resource_type, {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})
        dev_template.all_resources(resource_type, {"DeletionPolicy": "Delete"})
    prod_template.has_resource_properties("AWS::DynamoDB::Table", {"DeletionProtectionEnabled": True})
    prod_template.has_resource_properties("AWS::Cognito::UserPool", {"DeletionProtection": "ACTIVE"})
    dev_template.has_resource_properties("AWS::DynamoDB::Table", {"DeletionProtectionEnabled": False})


def test_stages_differ_in_names_retention_and_throttling(
    dev: tuple[AssistantStack, Template], prod: tuple[AssistantStack, Template]
) -> None:
    dev_stack, dev_template = dev
    prod_stack, prod_template = prod
    assert dev_stack.stack_name != prod_stack.stack_name
    assert prod_stack.termination_protection is True
    assert dev_stack.termination_protection is False
    prod_template.all_resources_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})
    _, dev_stage = only(dev_template, "AWS::ApiGatewayV2::Stage")
    _, prod_stage = only(prod_template, "AWS::ApiGatewayV2::Stage")
    assert prod_stage["Properties"]["StageName"] == "prod"
    assert (
        prod_stage["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"]
        > dev_stage["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"]
    )
    prod_template.has_resource_properties("AWS::Cognito::UserPool", {"UserPoolName": "gpt-assistant-prod"})


def test_failed_replies_and_worker_errors_raise_alarms(dev_template: Template) -> None:
    alarms = dev_template.find_resources("AWS::CloudWatch::Alarm")
    failed = [a["Properties"] for a in alarms.values() if a["Properties"].get("MetricName") == "RepliesFailed"]
    assert len(failed) == 1
    # The metric the worker emits (Powertools: namespace from the env, dimension service = the function's name).
    assert failed[0]["Namespace"] == "GptAssistant/dev"
    assert failed[0]["Dimensions"] == [{"Name": "service", "Value": "worker"}]
    worker = _logical_id_of_worker(dev_template)
    errors = [
        a["Properties"]
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "Errors"
        and a["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": worker}}]
    ]
    # (The authorizer has an Errors alarm of its own; see test_operations.py.)
    assert len(errors) == 1


def _logical_id_of_worker(template: Template) -> str:
    functions = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": "worker.handler"}})
    assert len(functions) == 1
    return next(iter(functions))


def test_the_worker_may_bring_a_failed_record_back_early(dev_template: Template) -> None:
    """`MessageQueue.retry_soon` shortens a failed record's visibility: the worker needs the queue's URL and
    sqs:ChangeMessageVisibility on exactly that queue."""
    worker = _logical_id_of_worker(dev_template)
    queues = resources(dev_template, "AWS::SQS::Queue")
    main_queue = next(name for name, queue in queues.items() if "RedrivePolicy" in queue["Properties"])
    grants = [s for s in _policy_statements_of(dev_template, worker) if "sqs:ChangeMessageVisibility" in _actions(s)]
    assert [g["Resource"] for g in grants] == [{"Fn::GetAtt": [main_queue, "Arn"]}]
    variables = dev_template.find_resources("AWS::Lambda::Function")[worker]["Properties"]["Environment"]["Variables"]
    assert variables["QUEUE_URL"] == {"Ref": main_queue}
