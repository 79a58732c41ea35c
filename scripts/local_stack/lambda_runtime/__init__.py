"""Invoking the handlers in ``lambdas/`` the way Lambda does: in containers of their own, or inside this process.

Two invokers, chosen by ``LocalStackSettings.isolation``:

``processes.ProcessLambdaRuntime`` ("process", the default of ``make dev``)
    Each function runs in worker processes of its own (its "containers": :mod:`.container_pool` starts them,
    :mod:`.execution_environment` runs in them), started with exactly the environment the deployed function has:
    the variables its ``FunctionSpec.env`` declares, what the Lambda runtime sets, and the SDK's endpoint pointing
    at moto. Powertools' metrics are on and flushed as EMF into the function's log file, as in Lambda. So a
    variable the wiring forgot, or a metrics flush that cannot work with the function's own environment, fails here
    as it fails in AWS. A container runs one invocation at a time; a timed-out or crashed one is killed and replaced
    on the next invocation, as Lambda replaces a sandbox.

``threads.LambdaRuntime`` ("thread")
    Every handler runs on a thread pool of this process, under the union of all functions' environments that the
    stack sets in ``os.environ``, with metrics disabled. It exists because tests reach into the handlers' process:
    unit tests of the gateway and the poller inject fake handlers (closures a child process cannot receive), and
    fault-injection tests replace a handler's ``dependencies`` or reset them while the stack runs. What it cannot
    catch: a function reading a variable only another function declares, a metrics flush that fails for lack of a
    namespace, module state shared between functions, a result that is not JSON. A handler that overruns its timeout
    keeps running (Python cannot kill a thread); the caller sees the error Lambda would give, and the overrun is
    logged.

Both give every invocation a context shaped like Lambda's and cut it off (for the caller) at the function's timeout.
:mod:`.invocation` has what both share (the context, the errors, the ``Invoker`` the gateway and the poller call).

This file imports nothing: a container's child process imports :mod:`.execution_environment` from this package
before it enters its function's environment, and must load nothing but the standard library until then.
"""
