"""The CDK app's stacks and constructs. Importing this package alone does not import aws_cdk, so scripts can read
``infra.names`` and ``infra.stage`` cheaply."""
