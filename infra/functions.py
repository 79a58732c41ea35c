"""One Lambda function per ``wiring.FUNCTIONS`` entry, each with its own role, log group and declared environment.

Every function gets its own role so that a grant to one (the secret to the worker, say) never reaches another.
Each function's environment is built by ``assistant.wiring.function_environment``, as the local stack builds it:
exactly the variables its ``FunctionSpec.env`` declares, and the synth stops at a declared variable without a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from assistant.environment import SETTINGS, Env
from assistant.function_specs import FUNCTIONS, WORKER, FunctionSpec, function_environment
from infra.layers import ARCHITECTURE, RUNTIME
from infra.retention import log_retention, removal_policy
from infra.stage import StageConfig

#: Declared variables the deployed stack deliberately leaves unset: the optional ones
#: (``assistant.environment.Setting.optional``), where the code falls back to its AWS defaults (the authorizer
#: derives the issuer and JWKS URL from the user pool, the model client uses the provider's endpoint and the
#: package's default model). The model key's secret is optional to the code but not to an OpenAI stage: the stack
#: decides it (``optional_env``).
OPTIONAL_ENV = frozenset(setting.env for setting in SETTINGS.values() if setting.optional) - {Env.OPENAI_SECRET_NAME}
#: The alias that event sources invoke when a function has SnapStart: Lambda snapshots published versions only, so
#: an invocation of ``$LATEST`` would initialize from scratch and the snapshot would never be used.
LIVE_ALIAS = "live"


def metrics_namespace(stage: StageConfig) -> str:
    # Per stage, so dev traffic never shows up on prod's dashboards.
    return f"GptAssistant/{stage.name}"


class AssistantFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        optional_env: frozenset[Env] = frozenset(),
    ) -> None:
        super().__init__(scope, construct_id)
        self._stage = stage
        #: Declared variables this stack leaves unset beyond :data:`OPTIONAL_ENV` (a Bedrock stage has no secret).
        self.optional_env = OPTIONAL_ENV | optional_env
        self._functions: dict[str, lambda_.Function] = {}
        #: The ``live`` alias of each function with SnapStart, by spec name (none on a stage without it).
        self._aliases: dict[str, lambda_.Alias] = {}
        for spec in FUNCTIONS:
            self._functions[spec.name] = self._create(spec, stage, code, layers)
            if self.snap_start(spec):
                self._aliases[spec.name] = self._live_alias(spec, self._functions[spec.name])
        self._environment_set = False

    def __getitem__(self, spec: FunctionSpec) -> lambda_.Function:
        return self._functions[spec.name]

    def items(self) -> list[tuple[FunctionSpec, lambda_.Function]]:
        return [(spec, self._functions[spec.name]) for spec in FUNCTIONS]

    def snap_start(self, spec: FunctionSpec) -> bool:
        """Whether ``spec``'s function gets SnapStart: the worker, where the stage asks for it; never a route or the
        authorizer (docs/scaling.md, "SnapStart": their import is small, and each would need a version and an alias
        behind its WebSocket integration, on every page load's path)."""
        return spec is WORKER and self._stage.worker_snap_start

    def invocation_target(self, spec: FunctionSpec) -> lambda_.IFunction:
        """What an event source of ``spec`` invokes: its ``live`` alias when it has SnapStart, else the function.
        Grants through either reach the function's role; metrics and alarms stay on the function, whose
        ``FunctionName`` dimension sums every version."""
        return self._aliases.get(spec.name) or self._functions[spec.name]

    def set_environment(self, values: Mapping[Env, str]) -> None:
        """Give every function the variables its spec declares, from the stack's ``values`` (once, all of them:
        a declared variable that is neither here nor optional stops the synth with its name)."""
        if self._environment_set:
            raise RuntimeError("the functions' environment is set once, from all of the stack's values")
        self._environment_set = True
        stage_values: dict[Env, str | None] = {
            **dict.fromkeys(self.optional_env),
            Env.METRICS_NAMESPACE: metrics_namespace(self._stage),
            Env.LOG_LEVEL: self._stage.log_level,
            **values,
        }
        for spec in FUNCTIONS:
            environment = function_environment(spec, {**stage_values, Env.SERVICE_NAME: spec.name})
            for name, value in environment.items():
                self._functions[spec.name].add_environment(name, value)

    def _create(
        self,
        spec: FunctionSpec,
        stage: StageConfig,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
    ) -> lambda_.Function:
        construct_id = f"{_pascal(spec.name)}Function"
        snap_start = self.snap_start(spec)
        log_group = logs.LogGroup(
            self,
            f"{_pascal(spec.name)}Logs",
            retention=log_retention(stage),
            removal_policy=removal_policy(stage),
        )
        role = iam.Role(
            self,
            f"{_pascal(spec.name)}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{stage.name} {spec.name}: only what this function uses",
        )
        # Instead of AWSLambdaBasicExecutionRole (any log group in the account): this function's log group only.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        return lambda_.Function(
            self,
            construct_id,
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=spec.handler,
            code=code,
            layers=list(layers),
            timeout=cdk.Duration.seconds(spec.timeout_seconds),
            memory_size=spec.memory_mb,
            role=role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            # X-Ray: Lambda samples invocations and the sampled ones build Powertools' Tracer (assistant.tracing):
            # cold start, every AWS call, the model request and its first token, per function.
            tracing=lambda_.Tracing.ACTIVE,
            # None renders no SnapStart property at all, so a stage without it synthesizes as before.
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            # A version the alias has moved away from is no longer invoked, but while it exists its snapshot stays
            # cached and billed (until Lambda drops it after 14 days without an invocation): delete it on update.
            current_version_options=(
                lambda_.VersionOptions(removal_policy=cdk.RemovalPolicy.DESTROY) if snap_start else None
            ),
        )

    def _live_alias(self, spec: FunctionSpec, function: lambda_.Function) -> lambda_.Alias:
        """A version published from the function's current configuration (a new one whenever its code, layers or
        environment change), behind the alias its event source invokes."""
        # CDK warns that SnapStart needs a published version; this is it.
        cdk.Annotations.of(function).acknowledge_warning(
            "@aws-cdk/aws-lambda:snapStartRequirePublish",
            "current_version publishes a version and the live alias points at it",
        )
        return lambda_.Alias(
            self,
            f"{_pascal(spec.name)}LiveAlias",
            alias_name=LIVE_ALIAS,
            version=function.current_version,
            description=f"{spec.name}: the published version its event source invokes (SnapStart restores only those)",
        )


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
