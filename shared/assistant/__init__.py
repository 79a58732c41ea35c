"""The package the Lambda handlers share: model client, tools, stores, push, auth."""
