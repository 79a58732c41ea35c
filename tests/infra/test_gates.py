"""The security and lint gates: cdk-nag must find nothing unacknowledged, cfn-lint nothing beyond .cfnlintrc."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest

from infra.nag import add_checks
from infra.stack import AssistantStack
from infra.stage import StageConfig
from tests.infra.conftest import SKIP_BUNDLING, assert_cfn_lint_clean, synth_app


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cdk_nag_reports_no_unacknowledged_findings(tmp_path: Path, stage: str) -> None:
    synth_app(tmp_path, stage)  # raises ValidationFailed on any finding
    report = tmp_path / "validation-report.json"
    if report.exists():
        violations = [v for p in json.loads(report.read_text())["pluginReports"] for v in p["violations"]]
        assert violations == []


def test_cdk_nag_fails_the_synth_on_a_finding(tmp_path: Path) -> None:
    """The same stack without its acknowledgments must not synthesize: the gate is real, not a report."""
    app = cdk.App(outdir=str(tmp_path), context=SKIP_BUNDLING)
    AssistantStack(app, stage=StageConfig.for_stage("dev"))
    add_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "AwsSolutions-SMG4" in rules


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cfn_lint_finds_nothing_beyond_the_justified_config(tmp_path: Path, stage: str) -> None:
    _, stack = synth_app(tmp_path, stage)
    assert_cfn_lint_clean(tmp_path / stack.template_file)
