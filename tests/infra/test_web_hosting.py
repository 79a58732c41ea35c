"""The chat page's hosting (``infra.web_hosting``): a private bucket, CloudFront with origin access control and
security headers, and a ``config.json`` generated from the stack's own outputs at deploy time."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.names import OutputKey
from infra.stack import AssistantStack
from infra.stage import StageConfig
from infra.web_hosting import WEB_DIR
from tests.infra.conftest import SKIP_BUNDLING, only, resources, synth_app

APP_JS = (WEB_DIR / "app.js").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AssistantStack, Template]:
    outdir = tmp_path_factory.mktemp("web-dev")
    _, stack = synth_app(outdir, "dev")
    return outdir, stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def template(synthesized: tuple[Path, AssistantStack, Template]) -> Template:
    return synthesized[2]


def _web(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    """The page's own bucket (or its policy): the stack also has the attachments bucket (infra.attachments)."""
    found = {k: v for k, v in resources(template, resource_type).items() if k.startswith("Web")}
    assert len(found) == 1, sorted(found)
    ((logical_id, resource),) = found.items()
    return logical_id, resource


def test_the_bucket_is_private_encrypted_and_tls_only(template: Template) -> None:
    bucket_id, bucket = _web(template, "AWS::S3::Bucket")
    assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "BucketEncryption" in bucket["Properties"]
    assert "WebsiteConfiguration" not in bucket["Properties"], "served by CloudFront, never as an S3 website"
    _, policy = _web(template, "AWS::S3::BucketPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )
    reads = [s for s in statements if s["Effect"] == "Allow"]
    assert reads, "CloudFront must be allowed to read"
    for statement in reads:
        # Only CloudFront, and only for this distribution (origin access control), may read.
        assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
        assert "AWS:SourceArn" in json.dumps(statement["Condition"])
        assert "WebDistribution" in json.dumps(statement["Condition"])
    assert bucket_id in json.dumps(policy["Properties"]["Bucket"])


def test_cloudfront_reads_through_origin_access_control_over_https_only(template: Template) -> None:
    oac_id, oac = only(template, "AWS::CloudFront::OriginAccessControl")
    assert oac["Properties"]["OriginAccessControlConfig"]["OriginAccessControlOriginType"] == "s3"
    assert oac["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    _, distribution = only(template, "AWS::CloudFront::Distribution")
    config = distribution["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac_id, "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}, "OAC, not the legacy origin access identity"
    assert config["DefaultRootObject"] == "index.html"
    behaviors = [config["DefaultCacheBehavior"], *config.get("CacheBehaviors", [])]
    for behavior in behaviors:
        assert behavior["ViewerProtocolPolicy"] in ("redirect-to-https", "https-only")
        assert "ResponseHeadersPolicyId" in behavior
    # config.json is never cached at the edge: a redeploy's new values are served at once.
    (config_behavior,) = (b for b in behaviors if b.get("PathPattern") == "/config.json")
    assert config_behavior["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CachingDisabled


def test_security_headers_allow_the_stages_websocket_and_cognito_only(template: Template) -> None:
    _, policy = only(template, "AWS::CloudFront::ResponseHeadersPolicy")
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = json.dumps(headers["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    api_id, _ = only(template, "AWS::ApiGatewayV2::Api")
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "wss://" in csp
    assert f'{{"Ref": "{api_id}"}}' in csp, "connect-src names this stage's WebSocket API"
    assert "https://cognito-idp." in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert headers["ContentTypeOptions"]["Override"] is True
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"


def test_config_json_is_generated_from_the_stacks_outputs(
    synthesized: tuple[Path, AssistantStack, Template],
) -> None:
    outdir, _, template = synthesized
    _, deployment = only(template, "Custom::CDKBucketDeployment")
    props = deployment["Properties"]
    # Two sources: web/ (without any local config.json) and the generated config.json.
    web_key, config_key = props["SourceObjectKeys"]
    web_asset = outdir / f"asset.{web_key.removesuffix('.zip')}"
    assert (web_asset / "index.html").is_file()
    assert (web_asset / "vendor" / "marked.esm.js").is_file()
    assert (web_asset / "vendor" / "amazon-cognito-identity.min.js").is_file()
    assert not (web_asset / "config.json").exists()
    config_text = (outdir / f"asset.{config_key.removesuffix('.zip')}" / "config.json").read_text()
    markers = props["SourceMarkers"][1]
    # Each value is a marker the deployment replaces with the resolved token (a JSON string) at deploy time.
    for marker, value in markers.items():
        config_text = config_text.replace(marker, json.dumps(json.dumps(value)))
    config = json.loads(config_text)
    api_id, _ = only(template, "AWS::ApiGatewayV2::Api")
    (client_id,) = resources(template, "AWS::Cognito::UserPoolClient")
    assert f'{{"Ref": "{api_id}"}}' in config["websocketUrl"]
    assert f'{{"Ref": "{client_id}"}}' in config["userPoolClientId"]
    (pool_id,) = resources(template, "AWS::Cognito::UserPool")
    assert f'{{"Ref": "{pool_id}"}}' in config["userPoolId"]
    assert '{"Ref": "AWS::Region"}' in config["region"]
    # The same values the stack outputs, and every key the page requires.
    outputs = template.to_json()["Outputs"]
    assert outputs[OutputKey.WEBSOCKET_URL]["Value"] == {
        "Fn::Join": [
            "",
            [
                "wss://",
                {"Ref": api_id},
                ".execute-api.",
                {"Ref": "AWS::Region"},
                ".",
                {"Ref": "AWS::URLSuffix"},
                "/dev",
            ],
        ]
    }
    assert json.loads(config["websocketUrl"]) == {
        "Fn::Join": [
            "",
            [
                '"wss://',
                {"Ref": api_id},
                ".execute-api.",
                {"Ref": "AWS::Region"},
                ".",
                {"Ref": "AWS::URLSuffix"},
                '/dev"',
            ],
        ]
    }
    for key in ("websocketUrl", "userPoolId", "userPoolClientId", "region"):
        assert re.search(rf"\b{key}\b", APP_JS), f"the page no longer reads {key}"
    assert "demoPassword" not in config
    assert set(config) == {"websocketUrl", "userPoolId", "userPoolClientId", "region"}, (
        "what scripts.web_config writes, too"
    )
    # Deleting a disposable stage empties the bucket (the deployment's own delete) so the bucket can go too.
    assert props["RetainOnDelete"] is False
    assert props["DistributionPaths"] == ["/*"]


def test_the_web_url_output_is_the_distribution(template: Template) -> None:
    distribution_id, _ = only(template, "AWS::CloudFront::Distribution")
    value = template.to_json()["Outputs"][OutputKey.WEB_URL]["Value"]
    assert value == {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution_id, "DomainName"]}]]}


def test_the_deployment_role_has_explicit_actions_and_no_managed_policy(template: Template) -> None:
    roles = {k: r for k, r in resources(template, "AWS::IAM::Role").items() if k.startswith("WebDeploymentRole")}
    ((role_id, role),) = roles.items()
    assert "ManagedPolicyArns" not in role["Properties"]
    policies = [
        p for p in resources(template, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert all("*" not in action for action in actions), actions
    assert {"s3:PutObject", "s3:DeleteObject", "cloudfront:CreateInvalidation"} <= actions
    invalidation = next(s for s in statements if "cloudfront:CreateInvalidation" in s["Action"])
    assert "WebDistribution" in json.dumps(invalidation["Resource"])


def test_a_stage_can_turn_web_hosting_off(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path), context=SKIP_BUNDLING)
    stack = AssistantStack(app, stage=replace(StageConfig.for_stage("dev"), web_hosting=False))
    template = Template.from_stack(stack)
    assert stack.web is None
    # The attachments bucket only (infra.attachments), its CORS for the origins the stage names.
    assert sorted(resources(template, "AWS::S3::Bucket")) == [
        stack.get_logical_id(stack.attachments.bucket.node.default_child)
    ]  # type: ignore[arg-type]
    assert resources(template, "AWS::CloudFront::Distribution") == {}
    assert resources(template, "Custom::CDKBucketDeployment") == {}
    assert OutputKey.WEB_URL not in template.to_json()["Outputs"]


def test_the_production_stage_keeps_its_page_bucket(tmp_path: Path) -> None:
    _, stack = synth_app(tmp_path, "prod")
    template = Template.from_stack(stack)
    _, bucket = _web(template, "AWS::S3::Bucket")
    assert bucket["DeletionPolicy"] == "Retain"
    _, deployment = only(template, "Custom::CDKBucketDeployment")
    assert deployment["Properties"]["RetainOnDelete"] is True
