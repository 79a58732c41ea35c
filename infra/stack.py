"""One stack per stage with every resource the assistant needs, wired from ``assistant.wiring``."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from assistant.wiring import AUTHORIZER, QUEUE, WORKER, Env, FunctionSpec
from infra.alarms import AuthorizerAlarms, WorkerAlarms
from infra.api_gateway_logging import ApiGatewayLoggingRole
from infra.attachments import AttachmentsBucket, attachments_bucket_name, attachments_origin
from infra.auth import UserDirectory
from infra.bedrock import model_grant
from infra.definition import DeployedDefinition
from infra.functions import AssistantFunctions
from infra.layers import Layers, handlers_code
from infra.names import OutputKey, openai_secret_name, stack_name
from infra.operations import AlarmTopic
from infra.queue import FifoQueueConstruct
from infra.secret import OpenAiKeySecret
from infra.stage import StageConfig
from infra.table import AssistantTable
from infra.web_hosting import WebHosting
from infra.websocket import WebSocketGateway


class AssistantStack(cdk.Stack):
    """Environment-agnostic (no account or region at synth), so ``cdk synth`` needs no AWS credentials."""

    def __init__(self, scope: Construct, *, stage: StageConfig, handlers: lambda_.Code | None = None) -> None:
        super().__init__(
            scope,
            stack_name(stage.name),
            description=f"Serverless GPT assistant, stage {stage.name}",
            termination_protection=stage.is_production,
        )
        self.stage_config = stage
        cdk.Tags.of(self).add("project", "gpt-assistant")
        cdk.Tags.of(self).add("stage", stage.name)

        self.users = UserDirectory(self, "Users", stage=stage)
        self.table = AssistantTable(self, "Data", stage=stage)
        self.messages = FifoQueueConstruct(self, "Messages", stage=stage)
        #: The model key's secret; ``None`` on a stage whose functions sign Bedrock requests with their roles.
        self.openai_secret = None if self.signs_model_requests else OpenAiKeySecret(self, "OpenAiKey", stage=stage)
        self.layers = Layers(self, "Layers")
        self.definition = DeployedDefinition(
            self, "Definition", assistant_file=stage.assistant_file, provider=stage.model_provider
        )
        self.functions = AssistantFunctions(
            self,
            "Functions",
            stage=stage,
            code=handlers or handlers_code(),
            layers=self.layers.all,
            optional_env=frozenset({Env.OPENAI_SECRET_NAME}) if self.signs_model_requests else frozenset(),
        )
        self.websocket = WebSocketGateway(
            self,
            "WebSocket",
            stage=stage,
            function_for=self.functions.__getitem__,
            authorizer_function=self.functions[AUTHORIZER],
        )
        self.api_gateway_logging = ApiGatewayLoggingRole(
            # The API resource itself, not its routes: those depend on the functions, and the stage on the account.
            self,
            "ApiGatewayLogging",
            api=self.websocket.api.node.default_child or self.websocket.api,
        )
        # The stage's access log settings fail to deploy until the account has an API Gateway logging role.
        self.websocket.stage.node.add_dependency(self.api_gateway_logging.account)

        self._provide_environment()
        self._deploy_definition()
        self._grant_permissions()
        # The worker's live alias when it has SnapStart (only published versions are restored from a snapshot).
        self.functions.invocation_target(WORKER).add_event_source(
            event_sources.SqsEventSource(
                self.messages.queue,
                batch_size=QUEUE.batch_size,
                # The worker reports failed records; SQS redelivers only those (and, in FIFO, the rest of the group).
                report_batch_item_failures=True,
                # Caps the replies streaming at once (model calls, their cost, and the account's Lambda concurrency);
                # messages beyond it wait in the queue instead of being throttled back to it.
                max_concurrency=stage.worker_max_concurrency,
            )
        )
        self.alarms = WorkerAlarms(self, "Alarms", stage=stage, worker=self.functions[WORKER])
        self.authorizer_alarms = AuthorizerAlarms(
            self, "AuthorizerAlarms", stage=stage, authorizer=self.functions[AUTHORIZER]
        )
        # Every alarm in the stack notifies this topic (an aspect adds the actions; see infra.operations).
        self.alarm_topic = AlarmTopic(self, "AlarmTopic", stage=stage)
        self.web = self._host_web_page() if stage.web_hosting else None
        self.attachments = AttachmentsBucket(
            self,
            "Attachments",
            stage=stage,
            allowed_origins=[self.web.url] if self.web is not None else list(stage.attachment_origins),
        )
        self._grant_bucket_access()
        self._outputs()

    @property
    def signs_model_requests(self) -> bool:
        """The stage's functions SigV4-sign their model requests with their roles (Bedrock): no secret."""
        return self.stage_config.model_provider.capabilities.auth == "aws_sigv4"

    def _provide_environment(self) -> None:
        stage = self.stage_config
        values: dict[Env, str] = {
            # Every limit, quota and streaming setting of the stage (assistant.environment.STAGE_SETTINGS).
            **stage.environment(),
            Env.TABLE_NAME: self.table.table.table_name,
            Env.QUEUE_URL: self.messages.queue.queue_url,
            Env.CALLBACK_URL: self.websocket.callback_url,
            Env.USER_POOL_ID: self.users.user_pool.user_pool_id,
            Env.USER_POOL_CLIENT_ID: self.users.client.user_pool_client_id,
            Env.MAX_RECEIVE_COUNT: str(QUEUE.max_receive_count),
            Env.MODEL_PROVIDER: stage.model_provider.value,
            # The name, not a reference to the bucket: the bucket's CORS names the page's distribution, whose
            # security headers name the WebSocket API, whose routes name these functions.
            Env.UPLOAD_BUCKET_NAME: attachments_bucket_name(stage.name),
        }
        if stage.model is not None:
            values[Env.MODEL_OVERRIDE] = stage.model
        if self.openai_secret is not None:
            # The literal name, not secret_name: that token would render as an Fn::Split of the ARN.
            values[Env.OPENAI_SECRET_NAME] = openai_secret_name(stage.name)
        if self.definition.layer is not None and self.definition.path is not None:
            values[Env.ASSISTANT_FILE] = self.definition.path
        self.functions.set_environment(values)

    def _deploy_definition(self) -> None:
        """A definition other than the packaged one: its layer for the functions that load it (its path is in
        their environment)."""
        if self.definition.layer is None or self.definition.path is None:
            return
        for spec, function in self.functions.items():
            if Env.ASSISTANT_FILE in spec.env:
                function.add_layers(self.definition.layer)

    def _grant_permissions(self) -> None:
        stage = self.stage_config
        model = model_grant(stage.model_provider, stage.model or "") if self.signs_model_requests else None
        for spec, function in self.functions.items():
            if spec.table_actions:
                self.table.grant(function, spec.table_actions)
            if spec.sends_to_queue:
                self.messages.grant_send(function)
            if spec.reads_openai_secret and self.openai_secret is not None:
                self.openai_secret.grant_read(function)
            if model is not None and self.grants_model_access(spec):
                model.grant(function, streams_replies=spec is WORKER)
            if spec.calls_mcp_servers:
                self.definition.grant_secrets(function)
            if spec.posts_to_connections or spec.closes_connections:
                self.websocket.grant_manage_connections(function, close=spec.closes_connections)

    def _grant_bucket_access(self) -> None:
        for spec, function in self.functions.items():
            if spec.bucket_grants:
                self.attachments.grant(function, spec.bucket_grants)

    def grants_model_access(self, spec: FunctionSpec) -> bool:
        """Whether ``spec``'s role is granted Bedrock inference on a stage that signs with its roles: the worker
        streams replies; ``commands`` calls the model only to cancel a background response (``bedrock-mantle``)."""
        if not self.signs_model_requests:
            return False
        if spec is WORKER:
            return True
        return spec.reads_openai_secret and self.stage_config.model_provider.capabilities.background

    def _host_web_page(self) -> WebHosting:
        """The page, its ``config.json`` written from the same values as the outputs below (the keys the page reads,
        as ``scripts.web_config`` writes them for a page hosted elsewhere)."""
        config = {
            "websocketUrl": self.websocket.url,
            "region": self.region,
            "userPoolId": self.users.user_pool.user_pool_id,
            "userPoolClientId": self.users.client.user_pool_client_id,
        }
        return WebHosting(
            self,
            "Web",
            stage=self.stage_config,
            config=config,
            websocket_origin=f"wss://{self.websocket.api.api_id}.execute-api.{self.region}.{self.url_suffix}",
            attachments_origin=attachments_origin(self.stage_config.name),
        )

    def _outputs(self) -> None:
        outputs = {
            OutputKey.WEBSOCKET_URL: (self.websocket.url, "wss:// URL clients connect to (append ?Auth=<token>)"),
            OutputKey.REGION: (self.region, "Region of the stack"),
            OutputKey.USER_POOL_ID: (self.users.user_pool.user_pool_id, "Cognito user pool id"),
            OutputKey.USER_POOL_CLIENT_ID: (self.users.client.user_pool_client_id, "Public app client id"),
            OutputKey.DEAD_LETTER_ALARM_NAME: (
                self.messages.dead_letter_alarm.alarm_name,
                "Alarm raised when a message reaches the dead-letter queue",
            ),
            OutputKey.ALARM_TOPIC_ARN: (
                self.alarm_topic.topic.topic_arn,
                "SNS topic every alarm of the stage notifies; subscribe to it",
            ),
        }
        if self.openai_secret is not None:
            outputs[OutputKey.OPENAI_SECRET_NAME] = (
                openai_secret_name(self.stage_config.name),
                "Secret holding the OpenAI key",
            )
        if self.web is not None:
            outputs[OutputKey.WEB_URL] = (self.web.url, "The chat page (CloudFront); its config.json is this stage's")
        for key, (value, description) in outputs.items():
            # Export-free outputs with fixed keys: scripts read them with DescribeStacks.
            cdk.CfnOutput(self, key, value=value, description=description)
