"""Whether Cognito still accepts an access token: the check a signature cannot make.

A Cognito access token stays a validly signed JWT until it expires, even after the user signed out everywhere
(``GlobalSignOut``, ``AdminUserGlobalSignOut``), was disabled (``AdminDisableUser``) or deleted
(``AdminDeleteUser``), or the refresh token it came from was revoked (``RevokeToken``). Cognito's own ``GetUser``
refuses such a token (``NotAuthorizedException``: "Access Token has been revoked", "User is disabled";
``UserNotFoundException`` for a deleted user), so ``GetUser`` with the token is the check:
https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_GlobalSignOut.html and
https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_RevokeToken.html.

Cost. ``GetUser`` is authorized by the access token itself (no IAM, no SigV4), and counts against Cognito's
``UserRead`` request-rate category (120 requests per second per account and region by default, adjustable; ten
read requests per second per user, not adjustable: https://docs.aws.amazon.com/cognito/latest/developerguide/quotas.html).
:class:`RevocationCheck` keeps each answer per container: a token Cognito accepted is not asked about again for
``recheck_seconds`` (60 by default, the stage's ``TOKEN_RECHECK_SECONDS``), a refused one is remembered as refused
(revocation is final). So a ``$connect`` costs at most one ``GetUser`` (none for a reconnect with the same token
within the interval in the same container), and an open connection at most one per token per interval per warm
container of each route function, whatever the number of frames. The cache holds SHA-256 digests, never a token.

Standard library only: the authorizer imports this, and its cold start is on every page load's path.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final, Literal

#: Cognito's errors for a token it no longer accepts (any of the five ways above, or a user who must reset their
#: password or is not confirmed): a verdict on the token, not an outage.
REFUSED_ERRORS: Final = frozenset(
    {
        "NotAuthorizedException",
        "UserNotFoundException",
        "PasswordResetRequiredException",
        "UserNotConfirmedException",
    }
)
#: A connecting client waits for this, so longer than this is treated as Cognito being unavailable.
_GET_USER_TIMEOUT_SECONDS: Final = 3.0
#: Plain http is allowed only to this host: the local stack's moto server.
_LOCAL_HTTP_HOSTS: Final = frozenset({"127.0.0.1"})
#: Answers kept per container. A token is ~1 KB, a digest 32 bytes: 4096 entries are ~0.5 MB with their overhead.
_MAX_ENTRIES: Final = 4096
#: A refused token stays refused (revocation is final); kept this long so a client retrying with it costs nothing.
_REFUSED_TTL_SECONDS: Final = 24 * 60 * 60

Verdict = Literal["accepted", "refused"]
#: Asks Cognito about a token: ``"accepted"`` or ``"refused"``, or raises :class:`RevocationCheckUnavailable`.
GetUser = Callable[[str], Verdict]


class TokenRefused(Exception):
    """Cognito refuses the token: the user signed out everywhere, was disabled or deleted, or it was revoked."""


class RevocationCheckUnavailable(Exception):
    """Cognito could not be asked (throttled, an outage, a timeout): no verdict on the token."""


class RevocationCheck:
    """Asks Cognito whether it still accepts a token, remembering the answers per container (see the module)."""

    def __init__(
        self,
        get_user: GetUser,
        *,
        recheck_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = _MAX_ENTRIES,
    ) -> None:
        if recheck_seconds <= 0:
            raise ValueError("recheck_seconds must be positive")
        self._get_user = get_user
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._max_entries = max_entries
        #: digest -> (verdict, trusted until on ``clock``), least recently used first.
        self._answers: OrderedDict[bytes, tuple[Verdict, float]] = OrderedDict()
        # The local stack serves several connections from threads of one process; Lambda never does.
        self._lock = threading.Lock()
        #: GetUser calls made (what docs/scaling.md's cost figures are measured with).
        self.calls = 0

    @property
    def recheck_seconds(self) -> float:
        return self._recheck_seconds

    def check(self, token: str, *, grace_on_outage: bool = False) -> bool:
        """Return ``True`` if Cognito accepts ``token`` (now, or within the last ``recheck_seconds``); raise
        :class:`TokenRefused` if it refuses it.

        Without an answer (:class:`RevocationCheckUnavailable`), ``grace_on_outage`` decides: ``False`` raises it
        (``$connect`` admits nobody it could not check), ``True`` returns ``False`` (let through unchecked) and asks
        again only after a tenth of the interval, so an outage neither closes every open connection nor turns each
        frame into a call against a struggling Cognito.
        """
        key = hashlib.sha256(token.encode("utf-8")).digest()
        now = self._clock()
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None and cached[1] > now:
                self._answers.move_to_end(key)
                if cached[0] == "refused":
                    raise TokenRefused("Cognito refuses this token")
                return True
        # Asked outside the lock: one slow call must not hold up every other token's check.
        with self._lock:
            self.calls += 1
        try:
            verdict = self._get_user(token)
        except RevocationCheckUnavailable:
            if not grace_on_outage:
                raise
            self._remember(key, "accepted", now + self._recheck_seconds / 10)
            return False
        ttl = self._recheck_seconds if verdict == "accepted" else _REFUSED_TTL_SECONDS
        self._remember(key, verdict, now + ttl)
        if verdict == "refused":
            raise TokenRefused("Cognito refuses this token")
        return True

    def _remember(self, key: bytes, verdict: Verdict, until: float) -> None:
        with self._lock:
            self._answers[key] = (verdict, until)
            self._answers.move_to_end(key)
            while len(self._answers) > self._max_entries:
                self._answers.popitem(last=False)


def cognito_endpoint(environ: Mapping[str, str], region: str) -> str:
    """Where Cognito's API is: the AWS SDKs' endpoint override if set (``AWS_ENDPOINT_URL_COGNITO_IDP``, then
    ``AWS_ENDPOINT_URL``: the local stack points every function at moto with it), else the region's endpoint.
    Read the way boto3 reads them, because this client is not boto3 (the authorizer does not import it)."""
    override = environ.get("AWS_ENDPOINT_URL_COGNITO_IDP") or environ.get("AWS_ENDPOINT_URL")
    return override or f"https://cognito-idp.{region}.amazonaws.com/"


def cognito_get_user(endpoint: str, *, timeout_seconds: float = _GET_USER_TIMEOUT_SECONDS) -> GetUser:
    """``GetUser`` over HTTPS at ``endpoint`` (plain http only to the local stack on 127.0.0.1).

    The request is the one the SDKs send for this unsigned operation: a JSON 1.1 POST naming the operation in
    ``X-Amz-Target``. The token goes in the body only, never in a URL or a log line.
    """
    parsed = urllib.parse.urlsplit(endpoint)
    local_http = parsed.scheme == "http" and parsed.hostname in _LOCAL_HTTP_HOSTS
    if not (parsed.scheme == "https" or local_http) or not parsed.hostname:
        raise ValueError("the Cognito endpoint must be https (or http://127.0.0.1 for the local stack)")

    def get_user(token: str) -> Verdict:
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            endpoint,
            data=json.dumps({"AccessToken": token}).encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AWSCognitoIdentityProviderService.GetUser",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_seconds) as response:  # noqa: S310
                response.read(64 * 1024)
            return "accepted"
        except urllib.error.HTTPError as error:
            code = _error_code(error)
            if error.code == 400 and code in REFUSED_ERRORS:
                return "refused"
            raise RevocationCheckUnavailable(f"GetUser answered {error.code} {code or ''}".strip()) from None
        except (OSError, ValueError) as error:  # URLError, timeouts, resets
            raise RevocationCheckUnavailable(f"GetUser failed: {type(error).__name__}") from None

    return get_user


def _error_code(error: urllib.error.HTTPError) -> str:
    """The error's type as AWS JSON protocols name it: ``x-amzn-ErrorType`` or the body's ``__type``, without the
    ``namespace#`` prefix or the ``:http://…`` suffix some services add."""
    raw = error.headers.get("x-amzn-ErrorType") or ""
    if not raw:
        try:
            body = json.loads(error.read(64 * 1024) or b"{}")
        except (OSError, ValueError):
            body = {}
        raw = str(body.get("__type", "")) if isinstance(body, dict) else ""
    return raw.split(":", 1)[0].rsplit("#", 1)[-1]


def revocation_check_from_env(environ: Mapping[str, str] | None = None, *, recheck_seconds: float) -> RevocationCheck:
    """The check a function builds once per container, against its region's Cognito (or the local stack's)."""
    env = os.environ if environ is None else environ
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    return RevocationCheck(cognito_get_user(cognito_endpoint(env, region)), recheck_seconds=recheck_seconds)
