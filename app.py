#!/usr/bin/env python3
"""The CDK app: ``npx cdk synth|deploy --context stage=<name>`` (default ``dev``)."""

import sys
from pathlib import Path

# The stacks read the wiring from the `assistant` package, which lives under shared/ (a Lambda layer, not an
# installed distribution); pytest and mypy get the same path from pyproject.toml.
sys.path.insert(0, str(Path(__file__).resolve().parent / "shared"))

import aws_cdk as cdk

from infra.application import build

app = cdk.App()
build(app)
app.synth()
