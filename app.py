#!/usr/bin/env python3
"""The CDK app: ``npx cdk synth|deploy --context stage=<name>`` (default ``dev``)."""

# The stacks read the wiring from the `assistant` package (shared/, installed into the venv by `make`).
import aws_cdk as cdk

from infra.application import build

app = cdk.App()
build(app)
app.synth()
