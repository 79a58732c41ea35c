"""A WebSocket gateway on 127.0.0.1 that behaves like an API Gateway WebSocket API, for the local stack.

What it copies from API Gateway, because the handlers and clients depend on it: the ``$connect`` identity-source
check before the authorizer, the REQUEST authorizer and its policy (:mod:`.policy`), the authorizer context in
every later event, route selection on ``$request.body.action`` with ``$default`` as the fallback, route responses,
``$disconnect`` on every kind of close (events in API Gateway's shapes, :mod:`.events`, so Powertools' parser
models accept them), the 32 KB frame limit (close 1009; see :data:`.server.MAX_CLIENT_MESSAGE_BYTES` for where
messages differ), the idle timeout and maximum connection age, the 29 s integration timeout with API Gateway's
error frames (:mod:`.server`), and the ``@connections`` management API (POST/GET/DELETE, ``GoneException`` for a
closed connection, :mod:`.connections`) that boto3's ``apigatewaymanagementapi`` client talks to unchanged. The
same server serves the web page, its ``config.json`` and its one-click demo sign-in (:mod:`.static`).
"""
