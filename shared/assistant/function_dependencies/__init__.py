"""What each function is built from: one module per function, each with its dataclass and its builder, from that
function's settings (a function imports only its own).

A handler module keeps its function's dependencies for the container's life (``assistant.lifecycle.PerContainer``)
and builds them with the builder here at its first invocation. Nothing is shared between functions and nothing is
cached here. The services a route runs are composed from the parts per invocation (cheap: no I/O), so a test that
replaces a part (``dataclasses.replace(deps, sqs=fake)``) gets a service that uses it. Heavy modules are imported
inside the builders: ``openai`` only by the functions that talk to the model, when they first do.
"""
