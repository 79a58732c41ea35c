"""Where the stage's alarms go: one encrypted SNS topic, optionally with an e-mail subscription.

Every ``cloudwatch.Alarm`` in the stack notifies the topic when it goes into ALARM and when it recovers (an aspect
finds them, so an alarm added later cannot be forgotten). Operators subscribe e-mail, chat or paging to the topic's
ARN (the ``AlarmTopicArn`` output) instead of editing alarms.

The topic is encrypted with a customer managed key of its own: CloudWatch cannot publish to a topic encrypted with
the AWS managed ``alias/aws/sns`` key (its key policy cannot be changed to let CloudWatch use it), and the account's
``kms:*`` statement in a key policy does not cover AWS service principals, so the key policy names CloudWatch.
"""

from __future__ import annotations

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct, IConstruct

from infra.stage import StageConfig

CLOUDWATCH = "cloudwatch.amazonaws.com"


class AlarmTopic(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the alarm notifications of the {stage.name} stage",
            enable_key_rotation=True,
            # It protects notifications in flight only, never data at rest, so nothing is lost with it; the
            # shortest waiting period keeps a destroyed dev stage from billing for a month.
            removal_policy=cdk.RemovalPolicy.DESTROY,
            pending_window=cdk.Duration.days(7),
        )
        # What CloudWatch needs to publish to a topic encrypted with this key (and nothing more).
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=f"GPT assistant alarms ({stage.name})",
            master_key=self.key,
            enforce_ssl=True,
        )
        alarms_of_this_stack_region = f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
        # A topic policy replaces SNS's default one, so CloudWatch must be allowed explicitly; only alarms of
        # this account may publish (CloudWatch acts for every account, so the source account is checked).
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": alarms_of_this_stack_region},
                },
            )
        )
        if stage.alarm_email is not None:
            # SNS e-mails a confirmation link first; nothing is delivered until the recipient follows it.
            self.topic.add_subscription(subscriptions.EmailSubscription(stage.alarm_email))
        cdk.Aspects.of(stack).add(NotifyTopicOfEveryAlarm(self.topic))


@jsii.implements(cdk.IAspect)
class NotifyTopicOfEveryAlarm:
    """Adds the topic as the alarm and OK action of every alarm in the scope, once each."""

    def __init__(self, topic: sns.ITopic) -> None:
        self._action = cloudwatch_actions.SnsAction(topic)
        self._wired: set[str] = set()

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, cloudwatch.Alarm) or node.node.path in self._wired:
            return
        self._wired.add(node.node.path)
        node.add_alarm_action(self._action)
        # The recovery too: an operator who was paged learns that it is over without opening the console.
        node.add_ok_action(self._action)
