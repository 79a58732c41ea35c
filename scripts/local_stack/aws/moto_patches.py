"""Where moto 5.2.5 behaves unlike AWS in ways the product depends on, patched process-wide when moto starts.

Each patch only ever makes moto more faithful, and is idempotent.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

#: moto's DynamoDB backend methods that read or write a table's items.
_MOTO_DYNAMODB_ITEM_METHODS = (
    "put_item",
    "get_item",
    "query",
    "scan",
    "update_item",
    "delete_item",
    "transact_write_items",
)
_moto_lock = threading.RLock()


def serialise_moto_dynamodb() -> None:
    """Run moto's DynamoDB item operations one at a time (process-wide, idempotent).

    moto 5.2.5's ``transact_write_items`` deep-copies the whole table as a backup and, when a condition fails,
    restores that copy; its threaded server runs requests concurrently, so the copy can fail ("dictionary changed
    size during iteration", a 500 to the caller) and the restore can silently undo other requests' writes. DynamoDB
    itself has neither problem. Under concurrency (the throughput benchmark, two tabs, several users) that loses
    replies the product delivered correctly, so the local stack applies this when it starts moto.
    """
    from moto.dynamodb.models import DynamoDBBackend

    for name in _MOTO_DYNAMODB_ITEM_METHODS:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_serialised", False):
            continue

        def locked(*args: Any, __method: Any = method, **kwargs: Any) -> Any:
            with _moto_lock:
                return __method(*args, **kwargs)

        functools.update_wrapper(locked, method)
        locked._serialised = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)


def roll_back_transactions_by_item() -> None:
    """Back up only the items a transaction writes, instead of whole tables (process-wide, idempotent).

    moto 5.2.5's ``transact_write_items`` deep-copies each table a transaction names, once per item of the
    transaction, before it starts: its rollback. That costs time in proportion to the table, so in a long local
    session (or the benchmark) every claim and every message record got slower as the table grew (a two-item
    claim took ~16 ms on a table of a few hundred items, on the path to the first text). DynamoDB's own cost does
    not depend on the table's size. This copies no table (moto's ``copy`` is handed a stand-in that returns a table
    as is); instead the items at the transaction's keys are copied before it runs and put back if it fails, which
    is all a rollback has to undo. Must run under :func:`serialise_moto_dynamodb`'s lock, which it takes, so no
    other write lands between the backup and a restore.
    """
    import moto.dynamodb.models as moto_dynamodb
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    if getattr(DynamoDBBackend.transact_write_items, "_rolls_back_by_item", False):
        return

    class _TablesAsThey:
        """moto's module sees this as ``copy``: a table's "backup" is the table itself."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    moto_dynamodb.copy = _TablesAsThey  # type: ignore[assignment]
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        with _moto_lock:
            backups = []
            for table_name, item_key in _written_keys(backend, transact_items):
                table = backend.get_table(table_name)
                try:
                    hash_key, range_key = backend.get_keys_value(table, item_key)
                except MockValidationException:
                    continue  # a malformed key: moto refuses that item before writing it
                backups.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
            try:
                original(backend, transact_items)
            except Exception:
                for table, hash_key, range_key, item in backups:
                    if item is None:
                        table.delete_item(hash_key, range_key)
                    else:
                        table.put_item(item.to_json()["Attributes"])
                raise

    functools.update_wrapper(transact_write_items, original)
    transact_write_items._rolls_back_by_item = True  # type: ignore[attr-defined]
    transact_write_items._serialised = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign, assignment]


def _written_keys(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``(table, key)`` of every item of a transaction that exists in a known table, as moto finds them."""
    keys = []
    for entry in transact_items:
        for operation, request in entry.items():
            table_name = request.get("TableName")
            if table_name not in backend.tables:
                continue  # moto fails the transaction itself, before it writes anything
            if operation == "Put":
                table = backend.tables[table_name]
                attributes = request["Item"]
                names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
                if any(name not in attributes for name in names):
                    continue
                keys.append((table_name, {name: attributes[name] for name in names}))
            elif "Key" in request:
                keys.append((table_name, request["Key"]))
    return keys


def keep_fifo_order_on_redelivery() -> None:
    """Make moto redeliver a FIFO group's failed records in order, as SQS does.

    moto 5.2.5 counts a received message whose visibility timeout has expired as still "in flight" for its group.
    When records b and c of a group both fail and become visible again, b is skipped because c still looks in
    flight, and c is delivered before b. A message that is visible again no longer holds its group in SQS, so it
    must not here either. (Process-wide, but only ever makes moto more faithful; checked by test_poller.py.)
    """
    from moto.sqs.models import Queue

    def pending_message_groups(queue: Any) -> set[str]:
        return {
            message.group_id
            for message in queue._pending_messages
            if message.group_id is not None and not message.visible
        }

    Queue.pending_message_groups = property(pending_message_groups)  # type: ignore[method-assign, assignment]


#: Called with a queue's name whenever moto adds a message to it (see :func:`on_sqs_message`).
SqsListener = Callable[[str], None]
_sqs_listeners: list[SqsListener] = []
_sqs_listeners_lock = threading.Lock()


def on_sqs_message(listener: SqsListener) -> Callable[[], None]:
    """Call ``listener(queue_name)`` each time moto (in this process, server or ``mock_aws``) adds a message to a
    queue: a send, a batch send, a move to the dead-letter queue. Returns the function that removes the listener.

    This is how the local event source long-polls in effect (:mod:`scripts.local_stack.event_source.sqs_poller`):
    SQS answers a waiting ``ReceiveMessage`` as soon as a message arrives, and Lambda's event source mapping always
    has one waiting, so a message reaches the worker without a polling interval in between. moto's own long poll
    cannot stand in for that (it busy-waits while another message of a FIFO group is in flight, and its receive is
    not safe to run concurrently on one queue), so the poller short-polls and sleeps, and this wakes it.
    The listener runs on moto's request thread and must not block.
    """
    _listen_to_sqs_sends()
    with _sqs_listeners_lock:
        _sqs_listeners.append(listener)

    def remove() -> None:
        with _sqs_listeners_lock:
            if listener in _sqs_listeners:
                _sqs_listeners.remove(listener)

    return remove


def _listen_to_sqs_sends() -> None:
    from moto.sqs.models import Queue

    original = Queue.add_message
    if getattr(original, "_signals", False):
        return

    def add_message(queue: Any, message: Any) -> None:
        original(queue, message)
        with _sqs_listeners_lock:
            listeners = list(_sqs_listeners)
        for listener in listeners:
            listener(queue.name)

    functools.update_wrapper(add_message, original)
    add_message._signals = True  # type: ignore[attr-defined]
    Queue.add_message = add_message  # type: ignore[method-assign, assignment]


def revoke_cognito_tokens() -> None:
    """Give moto's Cognito ``RevokeToken`` (process-wide, idempotent).

    moto 5.2.5 does not implement ``RevokeToken`` (its server answers it as an unknown action). In Cognito it
    revokes a refresh token and "all of the access tokens generated by, and at the same time as" it: the refresh
    token no longer refreshes, and those access tokens fail ``GetUser`` and every other token-authorized call
    (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_RevokeToken.html). moto keeps
    the access tokens it will accept in a table, with the refresh token's ``origin_jti`` in their claims, so this
    drops the refresh token and every access token with its ``origin_jti``. Like Cognito (and RFC 7009), revoking a
    token that is unknown or already revoked succeeds; a refresh token of another app client is refused.
    (The other four ways a token stops working, ``GlobalSignOut``, ``AdminUserGlobalSignOut``,
    ``AdminDisableUser`` and ``AdminDeleteUser``, already make moto's ``GetUser`` refuse it.)
    """
    from moto.cognitoidp.exceptions import NotAuthorizedError, ResourceNotFoundError
    from moto.cognitoidp.models import cognitoidp_backends
    from moto.cognitoidp.responses import CognitoIdpResponse

    if getattr(CognitoIdpResponse, "revoke_token", None) is not None:
        return

    def revoke(token: str, client_id: str) -> None:
        for account in cognitoidp_backends.values():
            for region, backend in account.items():
                if region == "global":
                    continue
                for pool in backend.user_pools.values():
                    if client_id not in pool.clients:
                        continue
                    issued = pool.refresh_tokens.get(token)
                    if issued is None:
                        return  # unknown or already revoked: nothing left to revoke
                    token_client, _username, origin_jti = issued
                    if token_client != client_id:
                        raise NotAuthorizedError("Refresh Token does not belong to this client")
                    pool.refresh_tokens[token] = None
                    for access_token in list(pool.access_tokens):
                        if _claims(access_token).get("origin_jti") == origin_jti:
                            pool.access_tokens.pop(access_token, None)
                    return
        raise ResourceNotFoundError(client_id)

    def revoke_token(response: Any) -> str:
        revoke(response._get_param("Token"), response._get_param("ClientId"))
        return "{}"

    CognitoIdpResponse.revoke_token = revoke_token  # type: ignore[attr-defined]


def _claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (moto's own tokens, read to match them up)."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


# --- Cognito sign-in: the app client's auth flows, and SRP that checks the password ------------------------------

#: RFC 5054's 3072-bit group (appendix A), the one Cognito's SRP uses (as its client libraries declare it:
#: amazon-cognito-identity-js's AuthenticationHelper, pycognito's aws_srp), with generator 2.
_SRP_N = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
_SRP_G = 2
#: The HKDF "info" Cognito's clients derive the 16-byte password key with.
_SRP_HKDF_INFO = b"Caldera Derived Key"

#: Which ``ExplicitAuthFlows`` value lets a client use an ``AuthFlow`` (the legacy names still count). A refresh is
#: always allowed: Cognito requires ``ALLOW_REFRESH_TOKEN_AUTH`` on every client that names its flows.
_FLOW_NEEDS = {
    "USER_SRP_AUTH": {"ALLOW_USER_SRP_AUTH"},
    "USER_PASSWORD_AUTH": {"ALLOW_USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH"},
    "ADMIN_USER_PASSWORD_AUTH": {"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"},
    "ADMIN_NO_SRP_AUTH": {"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"},
    "CUSTOM_AUTH": {"ALLOW_CUSTOM_AUTH", "CUSTOM_AUTH_FLOW_ONLY"},
}
#: A client created without ``ExplicitAuthFlows`` allows these (CreateUserPoolClient's documentation).
_DEFAULT_FLOWS = ("ALLOW_USER_SRP_AUTH", "ALLOW_CUSTOM_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")
_srp_lock = threading.Lock()


def _srp_hash(data: bytes) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def _srp_pad(value: int) -> bytes:
    """A number as the clients hash it: big-endian, with a leading zero byte when the top bit is set (a positive
    two's-complement number; ``padHex`` in the JavaScript client, ``pad_hex`` in pycognito)."""
    length = value.bit_length() // 8 + 1 if value else 1
    return value.to_bytes(length, "big")


def _srp_multiplier() -> int:
    return _srp_hash(_srp_pad(_SRP_N) + _srp_pad(_SRP_G))  # k = H(N | g)


class SrpChallenge:
    """The server's side of one Cognito SRP sign-in (SRP-6a, RFC 5054, with Cognito's hashing), from the client's
    ``SRP_A`` to checking its ``PASSWORD_CLAIM_SIGNATURE``.

    ``x = H(salt | H(poolName | userId | ":" | password))`` and ``v = g^x`` (made here from the password with a fresh
    salt: moto keeps passwords, Cognito keeps verifiers), ``B = k v + g^b``, ``u = H(A | B)``, ``S = (A v^u)^b``; the
    key is ``HKDF-SHA256(ikm=S, salt=u, info="Caldera Derived Key" | 0x01)`` cut to 16 bytes, and the signature is
    ``base64(HMAC-SHA256(key, poolName | userId | SECRET_BLOCK bytes | TIMESTAMP))``. Numbers are hashed as the
    clients pad them (:func:`_srp_pad`); ``poolName`` is the pool id after its ``_``.
    """

    def __init__(self, *, user_pool_id: str, user_id: str, password: str, srp_a_hex: str) -> None:
        import base64
        import hashlib
        import secrets

        try:
            self._srp_a = int(srp_a_hex, 16)
        except ValueError:
            raise ValueError("SRP_A is not a hexadecimal number") from None
        if self._srp_a % _SRP_N == 0:
            raise ValueError("SRP_A is invalid")
        self._pool_name = user_pool_id.split("_", 1)[1]
        self.user_id = user_id
        self._salt = int.from_bytes(secrets.token_bytes(16), "big")
        identity = hashlib.sha256(f"{self._pool_name}{user_id}:{password}".encode()).digest()
        self._verifier = pow(_SRP_G, _srp_hash(_srp_pad(self._salt) + identity), _SRP_N)
        self._small_b = int.from_bytes(secrets.token_bytes(32), "big")
        self._srp_b = (_srp_multiplier() * self._verifier + pow(_SRP_G, self._small_b, _SRP_N)) % _SRP_N
        #: Opaque to the client, which signs its bytes and sends it back (Cognito's is an encrypted blob).
        self.secret_block = base64.b64encode(secrets.token_bytes(64)).decode()

    def parameters(self) -> dict[str, str]:
        """The PASSWORD_VERIFIER challenge's parameters (the caller adds ``USERNAME``)."""
        return {
            "SALT": f"{self._salt:x}",
            "SRP_B": f"{self._srp_b:x}",
            "SECRET_BLOCK": self.secret_block,
            "USER_ID_FOR_SRP": self.user_id,
        }

    def verify(self, *, timestamp: str, signature: str) -> bool:
        """Whether ``signature`` proves the password this challenge was made with."""
        import base64
        import hashlib
        import hmac

        u = _srp_hash(_srp_pad(self._srp_a) + _srp_pad(self._srp_b))
        secret = pow(self._srp_a * pow(self._verifier, u, _SRP_N) % _SRP_N, self._small_b, _SRP_N)
        pseudo_random_key = hmac.new(_srp_pad(u), _srp_pad(secret), hashlib.sha256).digest()
        key = hmac.new(pseudo_random_key, _SRP_HKDF_INFO + b"\x01", hashlib.sha256).digest()[:16]
        message = (
            self._pool_name.encode() + self.user_id.encode() + base64.b64decode(self.secret_block) + timestamp.encode()
        )
        expected = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
        return hmac.compare_digest(expected.encode(), signature.encode())


def verify_cognito_sign_in() -> None:
    """Make moto's Cognito sign-in check what Cognito checks (process-wide, idempotent).

    - **The client's auth flows.** moto 5.2.5 lets any app client use any flow. Cognito refuses a flow the client
      does not list in ``ExplicitAuthFlows`` with ``InvalidParameterException`` ("USER_PASSWORD_AUTH flow not
      enabled for this client"); a client created without the list allows SRP, custom auth and refresh only
      (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPoolClient.html).
    - **SRP checks the password.** moto 5.2.5 answers ``USER_SRP_AUTH`` with random ``SALT``/``SRP_B`` and signs
      in whoever answers ``PASSWORD_VERIFIER``, with any password. Here the server side of Cognito's SRP-6a is real
      (https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-authentication-flow-methods.html):
      ``SRP_B = k v + g^b`` from a verifier made with a fresh salt from the user's password, ``SECRET_BLOCK`` an
      opaque base64 blob (the session), and the answer must carry ``PASSWORD_CLAIM_SIGNATURE = base64(HMAC-SHA256(
      key, poolName | USER_ID_FOR_SRP | SECRET_BLOCK bytes | TIMESTAMP))`` with the key derived from the password;
      otherwise ``NotAuthorizedException`` ("Incorrect username or password."), and the challenge is spent.
      ``USER_ID_FOR_SRP`` is the user's username, as in Cognito. Checked against two client libraries we did not
      write (pycognito in tests/unit/test_moto_cognito_srp.py, amazon-cognito-identity-js in the page's tests).
    """
    from moto.cognitoidp.exceptions import InvalidParameterException, NotAuthorizedError
    from moto.cognitoidp.models import CognitoIdpBackend

    if getattr(CognitoIdpBackend.initiate_auth, "_verifies_sign_in", False):
        return
    original_initiate = CognitoIdpBackend.initiate_auth
    original_admin_initiate = CognitoIdpBackend.admin_initiate_auth
    original_respond = CognitoIdpBackend.respond_to_auth_challenge
    #: SECRET_BLOCK -> what the answer to that PASSWORD_VERIFIER challenge is checked with.
    pending: dict[str, SrpChallenge] = {}

    def require_flow(client: Any, auth_flow: str) -> None:
        needed = _FLOW_NEEDS.get(auth_flow)
        if client is None or needed is None:
            return  # a refresh, or an unknown client/flow: moto's own checks answer those
        allowed = set(client.extended_config.get("ExplicitAuthFlows") or _DEFAULT_FLOWS)
        if not needed & allowed:
            raise InvalidParameterException(f"{auth_flow} flow not enabled for this client")

    def client_of(backend: Any, client_id: str) -> Any:
        return next(
            (pool.clients[client_id] for pool in backend.user_pools.values() if client_id in pool.clients), None
        )

    def initiate_auth(backend: Any, client_id: str, auth_flow: str, auth_parameters: dict[str, str]) -> Any:
        require_flow(client_of(backend, client_id), auth_flow)
        answer = original_initiate(backend, client_id, auth_flow, auth_parameters)
        if auth_flow != "USER_SRP_AUTH":
            return answer
        username, pool = backend.sessions.pop(answer["Session"])
        user = backend.admin_get_user(pool.id, username)
        try:
            challenge = SrpChallenge(
                user_pool_id=pool.id,
                user_id=user.username,
                password=user.password or "",
                srp_a_hex=auth_parameters.get("SRP_A", ""),
            )
        except ValueError as exc:
            raise InvalidParameterException(str(exc)) from None
        # The session is the secret block, as moto finds the session of a PASSWORD_VERIFIER answer by it.
        backend.sessions[challenge.secret_block] = (username, pool)
        with _srp_lock:
            pending[challenge.secret_block] = challenge
        answer["Session"] = challenge.secret_block
        answer["ChallengeParameters"].update(challenge.parameters())
        return answer

    def admin_initiate_auth(
        backend: Any, user_pool_id: str, client_id: str, auth_flow: str, auth_parameters: dict[str, str]
    ) -> Any:
        pool = backend.user_pools.get(user_pool_id)
        require_flow(pool.clients.get(client_id) if pool is not None else None, auth_flow)
        return original_admin_initiate(backend, user_pool_id, client_id, auth_flow, auth_parameters)

    def respond_to_auth_challenge(
        backend: Any, session: str, client_id: str, challenge_name: str, challenge_responses: dict[str, str]
    ) -> Any:
        if challenge_name == "PASSWORD_VERIFIER":
            secret_block = challenge_responses.get("PASSWORD_CLAIM_SECRET_BLOCK") or ""
            with _srp_lock:
                challenge = pending.pop(secret_block, None)
            if challenge is not None and not challenge.verify(
                timestamp=challenge_responses.get("TIMESTAMP") or "",
                signature=challenge_responses.get("PASSWORD_CLAIM_SIGNATURE") or "",
            ):
                backend.sessions.pop(secret_block, None)
                raise NotAuthorizedError("Incorrect username or password.")
        return original_respond(backend, session, client_id, challenge_name, challenge_responses)

    patches: list[tuple[Any, Any]] = [
        (initiate_auth, original_initiate),
        (admin_initiate_auth, original_admin_initiate),
        (respond_to_auth_challenge, original_respond),
    ]
    for patched, original in patches:
        functools.update_wrapper(patched, original)
        patched._verifies_sign_in = True
    CognitoIdpBackend.initiate_auth = initiate_auth  # type: ignore[method-assign, assignment]
    CognitoIdpBackend.admin_initiate_auth = admin_initiate_auth  # type: ignore[method-assign, assignment]
    CognitoIdpBackend.respond_to_auth_challenge = respond_to_auth_challenge  # type: ignore[method-assign, assignment]


def enforce_s3_post_policy() -> None:
    """Make moto's S3 check a browser-based upload's POST policy as S3 does (process-wide, idempotent).

    moto 5.2.5 stores whatever a ``multipart/form-data`` POST to a bucket carries: it reads neither the ``policy``
    nor its signature, so an upload of another type, another size or under another key than the server signed would
    pass locally and fail in AWS. S3's rules ("Creating a POST policy", Amazon S3 API Reference,
    https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html, and "Authenticating requests:
    browser-based uploads using POST",
    https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-UsingHTTPPOST.html), enforced here:

    - the policy is base64 JSON with an ``expiration`` (ISO 8601) after which the form is refused;
    - ``x-amz-signature`` is the SigV4 HMAC of the base64 policy with the key derived from the secret key (moto's
      fixed ``testing``), the date, region and service of ``x-amz-credential``: a policy the client edits fails;
    - every condition must hold: exact matches (``{"field": value}`` or ``["eq", "$field", value]``),
      ``["starts-with", "$field", prefix]`` and ``["content-length-range", min, max]`` on the file's size
      (``EntityTooSmall`` / ``EntityTooLarge`` otherwise);
    - "Each form field that you specify in a form (except x-amz-signature, file, policy, and field names that have
      an x-ignore- prefix) must appear in the list of conditions": a field the policy does not name is refused.

    Refusals are 403 ``AccessDenied`` ("Invalid according to Policy: ...") or 400 for the size, with S3's XML error.
    Anonymous form posts without a policy are refused too (the local bucket, like ours in AWS, is private).
    """
    from moto.s3.responses import S3Response

    original = S3Response._bucket_response_post
    if getattr(original, "_post_policy", False):
        return

    def checked(self: Any, request: Any, bucket_name: str) -> Any:
        form = getattr(self, "form_data", None)
        if (request.method == "POST" and form is not None and "policy" in form) or (form and "key" in form):
            refusal = _post_policy_refusal(dict(form.items()), bucket_name, len(self.body or b""))
            if refusal is not None:
                status, code, message = refusal
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
                )
                return status, {"Content-Type": "application/xml"}, body
        return original(self, request, bucket_name)

    checked._post_policy = True  # type: ignore[attr-defined]
    S3Response._bucket_response_post = checked  # type: ignore[method-assign]


#: The secret key of moto's fake credentials (``scripts.local_stack.aws.moto_server.FAKE_CREDENTIALS``).
_MOTO_SECRET_KEY = "testing"  # noqa: S105 - moto's fixed fake credential, not a secret


def _post_policy_refusal(form: dict[str, str], bucket: str, size: int) -> tuple[int, str, str] | None:
    import base64
    import datetime
    import hashlib
    import hmac
    import json

    def denied(why: str) -> tuple[int, str, str]:
        return 403, "AccessDenied", f"Invalid according to Policy: {why}"

    encoded = form.get("policy") or form.get("Policy")
    if not encoded:
        return 403, "AccessDenied", "Anonymous access is forbidden for this operation"
    credential = form.get("x-amz-credential", "")
    parts = credential.split("/")
    if form.get("x-amz-algorithm") != "AWS4-HMAC-SHA256" or len(parts) != 5:
        return 403, "AccessDenied", "Only SigV4 (AWS4-HMAC-SHA256) POST policies are accepted"
    _, day, region, service, terminal = parts
    signing_key = f"AWS4{_MOTO_SECRET_KEY}".encode()
    for piece in (day, region, service, terminal):
        signing_key = hmac.new(signing_key, piece.encode(), hashlib.sha256).digest()
    expected = hmac.new(signing_key, encoded.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, form.get("x-amz-signature", "")):
        return (
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    try:
        policy = json.loads(base64.b64decode(encoded))
        expiration = datetime.datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        return 400, "InvalidPolicyDocument", "Invalid Policy: the policy is not valid base64 JSON with an expiration."
    if expiration < datetime.datetime.now(datetime.UTC):
        return denied("Policy expired.")
    values = {name.lower(): value for name, value in form.items()}
    values["bucket"] = bucket
    covered = {"x-amz-signature", "file", "policy"}
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            for name, value in condition.items():
                covered.add(name.lower())
                if values.get(name.lower()) != value:
                    return denied(f'Policy Condition failed: ["eq", "${name}", "{value}"]')
        elif isinstance(condition, list) and condition and condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if size < low:
                return 400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size"
            if size > high:
                return 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] in ("eq", "starts-with"):
            name = str(condition[1]).lstrip("$").lower()
            covered.add(name)
            actual = values.get(name, "")
            ok = actual == condition[2] if condition[0] == "eq" else actual.startswith(str(condition[2]))
            if not ok:
                return denied(f'Policy Condition failed: ["{condition[0]}", "{condition[1]}", "{condition[2]}"]')
    uncovered = sorted(
        name for name in values if name not in covered and name != "bucket" and not name.startswith("x-ignore-")
    )
    if uncovered:
        return denied(f"Extra input fields: {', '.join(uncovered)}")
    return None
