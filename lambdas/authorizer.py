"""$connect REQUEST authorizer: the Cognito access token comes in the ``Auth`` query parameter
(:mod:`assistant.connect_authorizer` builds the policy; it imports neither boto3 nor pydantic)."""

from __future__ import annotations

from assistant.coldstart import collection_paused

# Imported with garbage collection paused, then frozen: no collection passes over what the container keeps for life
# (assistant.coldstart).
with collection_paused():
    import os

    from assistant import token_verifier
    from assistant.connect_authorizer import connect_authorizer
    from assistant.lifecycle import PerContainer

#: Built at the first invocation, kept for the container's life: it caches the JWKS it fetched.
dependencies = PerContainer(lambda: token_verifier.verifier_from_env(os.environ))

# Looked up at each call (not captured here), as every handler does, so a test can swap the module's dependencies.
handler = connect_authorizer(lambda: dependencies())
