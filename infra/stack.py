"""One stack per stage with every resource the assistant needs, wired from ``assistant.wiring``."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from assistant.wiring import AUTHORIZER, QUEUE, WORKER, Env
from infra.alarms import WorkerAlarms
from infra.api_gateway_logging import ApiGatewayLoggingRole
from infra.auth import UserDirectory
from infra.functions import AssistantFunctions
from infra.layers import Layers, handlers_code
from infra.names import OutputKey, openai_secret_name, stack_name
from infra.queue import MessageQueue
from infra.secret import OpenAiKeySecret
from infra.stage import StageConfig
from infra.table import AssistantTable
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
        self.messages = MessageQueue(self, "Messages", stage=stage)
        self.openai_secret = OpenAiKeySecret(self, "OpenAiKey", stage=stage)
        self.layers = Layers(self, "Layers")
        self.functions = AssistantFunctions(
            self, "Functions", stage=stage, code=handlers or handlers_code(), layers=self.layers.all
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
        self._grant_permissions()
        self.functions[WORKER].add_event_source(
            event_sources.SqsEventSource(
                self.messages.queue,
                batch_size=QUEUE.batch_size,
                # The worker reports failed records; SQS redelivers only those (and, in FIFO, the rest of the group).
                report_batch_item_failures=True,
            )
        )
        self.alarms = WorkerAlarms(self, "Alarms", stage=stage, worker=self.functions[WORKER])
        self._outputs()

    def _provide_environment(self) -> None:
        stage = self.stage_config
        values = {
            Env.TABLE_NAME: self.table.table.table_name,
            Env.QUEUE_URL: self.messages.queue.queue_url,
            Env.CALLBACK_URL: self.websocket.callback_url,
            Env.USER_POOL_ID: self.users.user_pool.user_pool_id,
            Env.USER_POOL_CLIENT_ID: self.users.client.user_pool_client_id,
            # The literal name, not secret_name: that token would render as an Fn::Split of the ARN.
            Env.OPENAI_SECRET_NAME: openai_secret_name(stage.name),
            Env.MAX_MESSAGE_CHARS: str(stage.max_message_chars),
            Env.DAILY_MESSAGE_QUOTA: str(stage.daily_message_quota),
            Env.DAILY_OUTPUT_TOKEN_QUOTA: str(stage.daily_output_token_quota),
            Env.FLUSH_INTERVAL_MS: str(stage.flush_interval_ms),
            Env.FLUSH_CHARS: str(stage.flush_chars),
            Env.MAX_RECEIVE_COUNT: str(QUEUE.max_receive_count),
        }
        if stage.model is not None:
            values[Env.MODEL_OVERRIDE] = stage.model
        self.functions.provide_all(values)

    def _grant_permissions(self) -> None:
        for spec, function in self.functions.items():
            if spec.table_access is not None:
                self.table.grant(function, spec.table_access)
            if spec.sends_to_queue:
                self.messages.grant_send(function)
            if spec.reads_openai_secret:
                self.openai_secret.grant_read(function)
            if spec.posts_to_connections:
                self.websocket.grant_manage_connections(function)

    def _outputs(self) -> None:
        outputs = {
            OutputKey.WEBSOCKET_URL: (self.websocket.url, "wss:// URL clients connect to (append ?Auth=<token>)"),
            OutputKey.REGION: (self.region, "Region of the stack"),
            OutputKey.USER_POOL_ID: (self.users.user_pool.user_pool_id, "Cognito user pool id"),
            OutputKey.USER_POOL_CLIENT_ID: (self.users.client.user_pool_client_id, "Public app client id"),
            OutputKey.OPENAI_SECRET_NAME: (openai_secret_name(self.stage_config.name), "Secret holding the OpenAI key"),
            OutputKey.DEAD_LETTER_ALARM_NAME: (
                self.messages.dead_letter_alarm.alarm_name,
                "Alarm raised when a message reaches the dead-letter queue",
            ),
        }
        for key, (value, description) in outputs.items():
            # Export-free outputs with fixed keys: scripts read them with DescribeStacks.
            cdk.CfnOutput(self, key, value=value, description=description)
