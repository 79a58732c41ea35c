"""A user Cognito no longer accepts is out: refused at ``$connect``, and an open connection of theirs gets
``token_revoked`` at its next frame and is closed. All five ways, through real WebSockets against the local stack.

The five ways: sign-out everywhere (``GlobalSignOut``, the user's own call), admin sign-out
(``AdminUserGlobalSignOut``), disabled (``AdminDisableUser``), deleted (``AdminDeleteUser``), and the refresh token
revoked (``RevokeToken``, what the page's Sign out does). The stack here trusts Cognito's "still accepted" for
1 second instead of the stages' 60 (``TOKEN_RECHECK_SECONDS``), so each case waits a second, not a minute; the
authorizer and the routes run in their own processes and ask moto's Cognito over HTTP, as deployed functions ask
Cognito.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from assistant.wiring import Env
from scripts.local_stack.aws.resources import generate_password
from scripts.local_stack.settings import limits_from_environment
from scripts.local_stack.stack import LocalStack, StackInfo
from tests.e2e.conftest import (
    cognito_client,
    create_user,
    e2e_settings,
    open_socket,
    receive_frame,
    request,
    running_stack,
    send,
    sign_in_tokens,
    stack_info,
)

#: How long the stack trusts Cognito's "still accepted" about a token (the stages' default is 60).
RECHECK_SECONDS = 1


@pytest.fixture(scope="module")
def revocation_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    limits = limits_from_environment() | {Env.TOKEN_RECHECK_SECONDS: str(RECHECK_SECONDS)}
    settings = e2e_settings(log_dir=tmp_path_factory.mktemp("lambda-logs"), limits=limits)
    with running_stack(settings) as stack:
        yield stack


def _signed_in_user(stack: LocalStack) -> tuple[str, dict[str, Any]]:
    username = f"revoked-{uuid.uuid4().hex[:10]}@example.com"
    password = generate_password()
    create_user(stack, username, password)
    return username, sign_in_tokens(stack_info(stack), username, password)


Revoke = Callable[[Any, StackInfo, str, dict[str, Any]], object]

REVOCATIONS: dict[str, Revoke] = {
    "sign-out-everywhere": lambda idp, info, username, tokens: idp.global_sign_out(AccessToken=tokens["AccessToken"]),
    "admin-sign-out": lambda idp, info, username, tokens: idp.admin_user_global_sign_out(
        UserPoolId=info.user_pool_id, Username=username
    ),
    "disabled": lambda idp, info, username, tokens: idp.admin_disable_user(
        UserPoolId=info.user_pool_id, Username=username
    ),
    "deleted": lambda idp, info, username, tokens: idp.admin_delete_user(
        UserPoolId=info.user_pool_id, Username=username
    ),
    "refresh-token-revoked": lambda idp, info, username, tokens: idp.revoke_token(
        Token=tokens["RefreshToken"], ClientId=info.user_pool_client_id
    ),
}


@pytest.mark.parametrize("revoke", REVOCATIONS.values(), ids=REVOCATIONS.keys())
async def test_a_revoked_user_is_closed_at_the_next_frame_and_refused_at_connect(
    revocation_stack: LocalStack, revoke: Revoke
) -> None:
    info = stack_info(revocation_stack)
    idp = cognito_client(info)
    username, tokens = _signed_in_user(revocation_stack)
    _, bystander = _signed_in_user(revocation_stack)

    async with (
        open_socket(info, tokens["AccessToken"]) as ws,
        open_socket(info, bystander["AccessToken"]) as other,
    ):
        # Both work, and both tokens were checked with Cognito (the answer now trusted for RECHECK_SECONDS).
        assert (await request(ws, {"action": "ping"}, "pong"))["type"] == "pong"
        assert (await request(other, {"action": "ping"}, "pong"))["type"] == "pong"

        await asyncio.to_thread(revoke, idp, info, username, tokens)
        await asyncio.sleep(RECHECK_SECONDS + 0.2)

        # The next frame, whatever its action, is answered token_revoked and the connection closed.
        await send(ws, {"action": "sendMessage", "message": "am I still in?"})
        frame = await receive_frame(ws)
        assert frame["type"] == "error", frame
        assert frame["code"] == "token_revoked", frame
        with pytest.raises(ConnectionClosed):
            await receive_frame(ws, timeout=5)

        # Only that user: another user's connection keeps working.
        assert (await request(other, {"action": "ping"}, "pong"))["type"] == "pong"

    # And the same token opens nothing any more.
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(info, tokens["AccessToken"]):
            pass
    assert refused.value.response.status_code == 403


async def test_a_token_revoked_before_its_first_use_is_refused_at_connect(revocation_stack: LocalStack) -> None:
    """No earlier answer is cached anywhere for this token: the authorizer asks Cognito and is told no."""
    info = stack_info(revocation_stack)
    _, tokens = _signed_in_user(revocation_stack)
    await asyncio.to_thread(cognito_client(info).global_sign_out, AccessToken=tokens["AccessToken"])
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(info, tokens["AccessToken"]):
            pass
    assert refused.value.response.status_code == 403
