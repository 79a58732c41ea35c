"""Cognito access-token verification: moto-minted tokens pass, every forgery and misuse fails."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from assistant.token_verifier import InvalidToken, KeySetUnavailable, Principal, TokenVerifier
from tests.conftest import CognitoPool, FakeClock
from tests.http_stub import StubRequest, http_stub

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool"
CLIENT_ID = "5example0client0id0abcdefg"
KID = "test-key-1"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(key: rsa.RSAPrivateKey, kid: str = KID) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]}


class CountingSource:
    """A JWKS source that counts its calls, so tests can see when the verifier fetches."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.calls = 0

    def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        return self.document


def cognito_claims(now: float, **overrides: Any) -> dict[str, Any]:
    """The claims real Cognito puts in an access token."""
    claims: dict[str, Any] = {
        "sub": "7c1e0f9a-0000-4000-8000-000000000001",
        "iss": ISSUER,
        "client_id": CLIENT_ID,
        "origin_jti": "4d3a5c8e-1111-4111-8111-111111111111",
        "event_id": "0e0e0e0e-2222-4222-8222-222222222222",
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": int(now),
        "exp": int(now) + 3600,
        "iat": int(now),
        "jti": "9f9f9f9f-3333-4333-8333-333333333333",
        "username": "alice",
        "version": 2,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign(key: rsa.RSAPrivateKey, claims: Mapping[str, Any], *, kid: str = KID) -> str:
    return jwt.encode(dict(claims), key, algorithm="RS256", headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def verifier(source: Callable[[], Mapping[str, Any]], clock: Callable[[], float], **options: Any) -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, client_id=CLIENT_ID, jwks_source=source, clock=clock, **options)


@pytest.fixture
def source(rsa_key: rsa.RSAPrivateKey) -> CountingSource:
    return CountingSource(jwks_of(rsa_key))


@pytest.fixture
def custom(source: CountingSource, fake_clock: FakeClock) -> TokenVerifier:
    return verifier(source, fake_clock)


def reason(call: Callable[[], object]) -> str:
    with pytest.raises(InvalidToken) as caught:
        call()
    return caught.value.reason


# --- Tokens minted by moto's Cognito ----------------------------------------------------------------------------


@pytest.fixture
def moto_verifier(cognito_pool: CognitoPool) -> TokenVerifier:
    return TokenVerifier(issuer=cognito_pool.issuer, client_id=cognito_pool.client_id, jwks_source=CognitoPool.jwks)


def test_moto_access_token_verifies(cognito_pool: CognitoPool, moto_verifier: TokenVerifier) -> None:
    principal = moto_verifier.verify(cognito_pool.access_token())

    assert (principal.user_id, principal.username) == (cognito_pool.user_sub, cognito_pool.username)


def test_each_user_gets_their_own_principal(cognito_pool: CognitoPool, moto_verifier: TokenVerifier) -> None:
    bob_sub = cognito_pool.create_user("bob", "Another-Horse-7-staple")

    bob = moto_verifier.verify(cognito_pool.access_token(username="bob", password="Another-Horse-7-staple"))

    assert (bob.user_id, bob.username) == (bob_sub, "bob")
    assert bob.user_id != cognito_pool.user_sub


def test_jwks_is_fetched_once_per_verifier(cognito_pool: CognitoPool) -> None:
    counting = CountingSource(CognitoPool.jwks())
    verifier_ = TokenVerifier(issuer=cognito_pool.issuer, client_id=cognito_pool.client_id, jwks_source=counting)

    for _ in range(3):
        verifier_.verify(cognito_pool.access_token())

    assert counting.calls == 1


def test_id_token_is_rejected(cognito_pool: CognitoPool, moto_verifier: TokenVerifier) -> None:
    assert reason(lambda: moto_verifier.verify(cognito_pool.id_token())) == "not an access token"


def test_token_of_another_app_client_is_rejected(cognito_pool: CognitoPool, moto_verifier: TokenVerifier) -> None:
    other_client = cognito_pool.add_client("some-other-app")

    token = cognito_pool.access_token(client_id=other_client)

    assert reason(lambda: moto_verifier.verify(token)) == "wrong client"


def test_token_of_another_pool_is_rejected(cognito_pool: CognitoPool, moto_verifier: TokenVerifier) -> None:
    # moto signs every pool's tokens with the same key, exactly the case where only the issuer tells them apart.
    other_pool_id = cognito_pool.client.create_user_pool(PoolName="other")["UserPool"]["Id"]
    other = CognitoPool(
        client=cognito_pool.client,
        region=cognito_pool.region,
        user_pool_id=other_pool_id,
        client_id=cognito_pool.client_id,
        username="mallory",
        password="Mallory-Horse-3-battery",
        user_sub="",
    )
    other.create_user(other.username, other.password)
    token = other.access_token(client_id=other.add_client("web"))

    assert reason(lambda: moto_verifier.verify(token)) == "wrong issuer"


def test_expired_moto_token_is_rejected(cognito_pool: CognitoPool) -> None:
    later = time.time() + 3600 + 31
    verifier_ = TokenVerifier(
        issuer=cognito_pool.issuer,
        client_id=cognito_pool.client_id,
        jwks_source=CognitoPool.jwks,
        clock=lambda: later,
    )

    assert reason(lambda: verifier_.verify(cognito_pool.access_token())) == "expired"


def test_tampered_payload_with_original_signature_is_rejected(
    cognito_pool: CognitoPool, moto_verifier: TokenVerifier
) -> None:
    header, payload, signature = cognito_pool.access_token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = ".".join([header, b64(json.dumps(claims).encode()), signature])

    assert reason(lambda: moto_verifier.verify(forged)) == "bad signature"


# --- Claims and times -------------------------------------------------------------------------------------------


def test_real_cognito_claims_verify(rsa_key: rsa.RSAPrivateKey, custom: TokenVerifier, fake_clock: FakeClock) -> None:
    token = sign(rsa_key, cognito_claims(fake_clock.now))

    claims = cognito_claims(fake_clock.now)
    # The expiry travels with the principal: the connection it opens ends with it.
    assert custom.verify(token) == Principal(
        user_id="7c1e0f9a-0000-4000-8000-000000000001", username="alice", expires_at=int(claims["exp"])
    )


def test_username_falls_back_to_sub(rsa_key: rsa.RSAPrivateKey, custom: TokenVerifier, fake_clock: FakeClock) -> None:
    token = sign(rsa_key, cognito_claims(fake_clock.now, username=None))

    assert custom.verify(token).username == "7c1e0f9a-0000-4000-8000-000000000001"


def test_expiry_honours_leeway(rsa_key: rsa.RSAPrivateKey, custom: TokenVerifier, fake_clock: FakeClock) -> None:
    token = sign(rsa_key, cognito_claims(fake_clock.now, exp=int(fake_clock.now) + 60))

    fake_clock.advance(60 + 29)
    assert custom.verify(token).username == "alice"
    fake_clock.advance(1)
    assert reason(lambda: custom.verify(token)) == "expired"


@pytest.mark.parametrize(
    ("claim", "offset", "accepted"),
    [
        ("iat", 25, True),
        ("iat", 3600, False),
        ("nbf", 25, True),
        ("nbf", 3600, False),
    ],
)
def test_not_yet_valid(
    rsa_key: rsa.RSAPrivateKey,
    custom: TokenVerifier,
    fake_clock: FakeClock,
    claim: str,
    offset: int,
    accepted: bool,
) -> None:
    start = int(fake_clock.now) + offset
    token = sign(rsa_key, cognito_claims(fake_clock.now, **{claim: start, "exp": start + 3600}))

    if accepted:
        assert custom.verify(token).username == "alice"
    else:
        assert reason(lambda: custom.verify(token)) == "not yet valid"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"exp": None}, "missing claim exp"),
        ({"iat": None}, "missing claim iat"),
        ({"sub": None}, "missing claim sub"),
        ({"sub": ""}, "missing claim sub"),
        ({"iss": None}, "missing claim iss"),
        ({"exp": "tomorrow"}, "invalid claim exp"),
        ({"iat": True}, "invalid claim iat"),
        ({"token_use": None}, "not an access token"),
        ({"token_use": "id", "aud": CLIENT_ID, "client_id": None}, "not an access token"),
        ({"client_id": None}, "wrong client"),
        ({"client_id": "another-client"}, "wrong client"),
        ({"iss": ISSUER + "/"}, "wrong issuer"),
        ({"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_OtherPool"}, "wrong issuer"),
    ],
)
def test_bad_claims_are_rejected(
    rsa_key: rsa.RSAPrivateKey,
    custom: TokenVerifier,
    fake_clock: FakeClock,
    overrides: dict[str, Any],
    expected: str,
) -> None:
    token = sign(rsa_key, cognito_claims(fake_clock.now, **overrides))

    assert reason(lambda: custom.verify(token)) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # An access token of another app client of the same pool: token_use is right, only the client is wrong.
        pytest.param({"client_id": "another-app-client"}, "wrong client", id="other-client-access-token"),
        # Our own client's token that is not an access token: client_id is right, only token_use is wrong.
        pytest.param({"token_use": "id"}, "not an access token", id="own-client-id-token"),
        pytest.param({"token_use": "id", "aud": CLIENT_ID}, "not an access token", id="own-client-id-token-aud"),
        pytest.param({"token_use": "refresh"}, "not an access token", id="own-client-refresh-use"),
        pytest.param({"token_use": "Access"}, "not an access token", id="token-use-case"),
    ],
)
def test_token_use_and_client_id_are_each_checked_on_their_own(
    rsa_key: rsa.RSAPrivateKey,
    custom: TokenVerifier,
    fake_clock: FakeClock,
    overrides: dict[str, Any],
    expected: str,
) -> None:
    """Each token fails exactly one of the two checks, so dropping either check lets its token in."""
    claims = cognito_claims(fake_clock.now, **overrides)
    wrong = {name for name in ("token_use", "client_id") if claims.get(name) != cognito_claims(fake_clock.now)[name]}
    assert len(wrong) == 1, "the token must be wrong in exactly one of the two claims"

    with pytest.raises(InvalidToken) as caught:
        custom.verify(sign(rsa_key, claims))

    assert caught.value.reason == expected


def _alg_token(alg: str, key: rsa.RSAPrivateKey, claims: Mapping[str, Any]) -> str:
    """A token with header ``alg``: unsigned (none), HMAC keyed with the public key (the confusion attack), or
    signed by the pool's own private key with another asymmetric algorithm."""
    if alg == "none":
        return jwt.encode(dict(claims), "", algorithm="none", headers={"kid": KID})
    if alg.startswith("HS"):
        pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        signing_input = (
            b64(json.dumps({"alg": alg, "kid": KID, "typ": "JWT"}).encode())
            + "."
            + b64(json.dumps(dict(claims)).encode())
        )
        return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), digest).digest())}"
    return jwt.encode(dict(claims), key, algorithm=alg, headers={"kid": KID})


ALGORITHMS_REFUSED = ["none", "HS256", "HS384", "HS512", "RS384", "RS512", "PS256"]


@pytest.mark.parametrize("alg", ALGORITHMS_REFUSED)
def test_only_rs256_passes_the_algorithm_gate(
    rsa_key: rsa.RSAPrivateKey, custom: TokenVerifier, source: CountingSource, fake_clock: FakeClock, alg: str
) -> None:
    # Every claim is right, and RS384/RS512/PS256 are even signed by the pool's own key: only the algorithm is wrong.
    token = _alg_token(alg, rsa_key, cognito_claims(fake_clock.now))
    assert jwt.get_unverified_header(token)["alg"] == alg

    with pytest.raises(InvalidToken) as caught:
        custom.verify(token)

    assert caught.value.reason == "unsupported algorithm"
    assert source.calls == 0  # refused before any key lookup: a forged header costs no JWKS fetch
    # The same claims signed as Cognito signs them pass, so the algorithm alone was refused.
    assert custom.verify(_alg_token("RS256", rsa_key, cognito_claims(fake_clock.now))).username == "alice"


# --- Forgeries and garbage --------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", None])
def test_missing_token_is_rejected(custom: TokenVerifier, source: CountingSource, token: Any) -> None:
    assert reason(lambda: custom.verify(token)) == "missing token"
    assert source.calls == 0


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "...",
        "eyJhbGciOiJSUzI1NiJ9",
        "eyJhbGciOiJSUzI1NiJ9.e30",
        b64(b"[1,2]") + ".e30.sig",
        b64(b'{"alg":"RS256","kid":"test-key-1"}') + "." + b64(b"not json") + "." + b64(b"x" * 256),
        "ünïcödé.token.value",
    ],
)
def test_garbage_is_rejected(custom: TokenVerifier, token: str) -> None:
    assert reason(lambda: custom.verify(token)) in {"malformed token", "unsupported algorithm", "bad signature"}


def test_absurdly_long_token_is_rejected_before_parsing(custom: TokenVerifier, source: CountingSource) -> None:
    token = "a" * 10_000_000

    assert reason(lambda: custom.verify(token)) == "token too long"
    assert source.calls == 0


def test_max_token_bytes_is_the_limit(
    rsa_key: rsa.RSAPrivateKey, source: CountingSource, fake_clock: FakeClock
) -> None:
    token = sign(rsa_key, cognito_claims(fake_clock.now))

    assert verifier(source, fake_clock, max_token_bytes=len(token)).verify(token).username == "alice"
    assert reason(lambda: verifier(source, fake_clock, max_token_bytes=len(token) - 1).verify(token)) == (
        "token too long"
    )


def test_alg_none_is_rejected(custom: TokenVerifier, fake_clock: FakeClock) -> None:
    token = jwt.encode(cognito_claims(fake_clock.now), "", algorithm="none", headers={"kid": KID})

    assert reason(lambda: custom.verify(token)) == "unsupported algorithm"


def test_unsigned_token_claiming_rs256_is_rejected(custom: TokenVerifier, fake_clock: FakeClock) -> None:
    header = b64(json.dumps({"alg": "RS256", "kid": KID}).encode())
    payload = b64(json.dumps(cognito_claims(fake_clock.now)).encode())

    assert reason(lambda: custom.verify(f"{header}.{payload}.")) in {"bad signature", "malformed token"}


@pytest.mark.parametrize("claimed_alg", ["HS256", "RS256"])
def test_hmac_signed_with_public_key_pem_is_rejected(
    rsa_key: rsa.RSAPrivateKey, custom: TokenVerifier, fake_clock: FakeClock, claimed_alg: str
) -> None:
    # The algorithm-confusion attack: the public key is public, so an HMAC "signature" keyed with it is forgeable.
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = (
        b64(json.dumps({"alg": claimed_alg, "kid": KID, "typ": "JWT"}).encode())
        + "."
        + b64(json.dumps(cognito_claims(fake_clock.now)).encode())
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()

    expected = "unsupported algorithm" if claimed_alg == "HS256" else "bad signature"
    assert reason(lambda: custom.verify(f"{signing_input}.{b64(signature)}")) == expected


def test_token_signed_by_another_key_is_rejected(custom: TokenVerifier, fake_clock: FakeClock) -> None:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert reason(lambda: custom.verify(sign(attacker, cognito_claims(fake_clock.now)))) == "bad signature"


def test_token_without_kid_is_rejected(
    rsa_key: rsa.RSAPrivateKey, custom: TokenVerifier, fake_clock: FakeClock
) -> None:
    token = jwt.encode(cognito_claims(fake_clock.now), rsa_key, algorithm="RS256")

    assert reason(lambda: custom.verify(token)) == "missing key id"


# --- Key set: refetch on unknown kid, rate-limited --------------------------------------------------------------


def test_unknown_kid_refetches_at_most_once_per_interval(
    rsa_key: rsa.RSAPrivateKey, source: CountingSource, fake_clock: FakeClock
) -> None:
    verifier_ = verifier(source, fake_clock, min_refetch_interval_seconds=60.0)
    good = sign(rsa_key, cognito_claims(fake_clock.now, exp=int(fake_clock.now) + 86400))
    unknown = sign(rsa_key, cognito_claims(fake_clock.now, exp=int(fake_clock.now) + 86400), kid="forged-kid")

    verifier_.verify(good)
    assert source.calls == 1

    fake_clock.advance(61)
    for _ in range(20):
        assert reason(lambda: verifier_.verify(unknown)) == "unknown key id"
        fake_clock.advance(1)
    assert source.calls == 2  # one refetch in those 20 seconds

    fake_clock.advance(60)
    assert reason(lambda: verifier_.verify(unknown)) == "unknown key id"
    assert source.calls == 3
    # The known key keeps working throughout.
    assert verifier_.verify(good).username == "alice"
    assert source.calls == 3


def test_rotated_key_is_picked_up_by_refetch(
    rsa_key: rsa.RSAPrivateKey, source: CountingSource, fake_clock: FakeClock
) -> None:
    verifier_ = verifier(source, fake_clock)
    verifier_.verify(sign(rsa_key, cognito_claims(fake_clock.now)))
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    source.document = {"keys": jwks_of(rsa_key)["keys"] + jwks_of(new_key, kid="rotated")["keys"]}

    fake_clock.advance(120)
    principal = verifier_.verify(sign(new_key, cognito_claims(fake_clock.now), kid="rotated"))

    assert principal.username == "alice"
    assert source.calls == 2


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"keys": []},
        {"keys": "nope"},
        {"keys": [{"kty": "oct", "k": b64(b"secret-bytes"), "kid": KID}]},
    ],
)
def test_unusable_key_set_is_reported_not_blamed_on_the_token(
    rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock, document: dict[str, Any]
) -> None:
    verifier_ = verifier(CountingSource(document), fake_clock)

    with pytest.raises(KeySetUnavailable):
        verifier_.verify(sign(rsa_key, cognito_claims(fake_clock.now)))


def test_failing_jwks_source_is_reported(rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock) -> None:
    def unreachable() -> Mapping[str, Any]:
        raise TimeoutError("timed out")

    with pytest.raises(KeySetUnavailable):
        verifier(unreachable, fake_clock).verify(sign(rsa_key, cognito_claims(fake_clock.now)))


# --- for_user_pool and the URL source ---------------------------------------------------------------------------


@pytest.fixture
def jwks_server(rsa_key: rsa.RSAPrivateKey) -> Iterator[tuple[str, list[str]]]:
    """Serves the test JWKS over real HTTP on 127.0.0.1; yields the base URL and the paths requested."""
    document = jwks_of(rsa_key)
    requested: list[str] = []

    def serve(request: StubRequest) -> None:
        requested.append(request.path)
        if not request.path.endswith("/.well-known/jwks.json"):
            request.error(404, "Not Found")
            return
        request.answer_json(200, document)

    with http_stub(serve, methods=("GET",)) as origin:
        yield origin, requested


def test_for_user_pool_defaults_to_the_cognito_issuer(
    rsa_key: rsa.RSAPrivateKey, jwks_server: tuple[str, list[str]]
) -> None:
    base, requested = jwks_server
    verifier_ = TokenVerifier.for_user_pool(
        region="us-east-1",
        user_pool_id="us-east-1_TestPool",
        client_id=CLIENT_ID,
        jwks_url=f"{base}/keys/.well-known/jwks.json",
    )

    assert verifier_.verify(sign(rsa_key, cognito_claims(time.time()))).username == "alice"
    other_iss = cognito_claims(time.time(), iss="https://cognito-idp.eu-west-1.amazonaws.com/us-east-1_TestPool")
    assert reason(lambda: verifier_.verify(sign(rsa_key, other_iss))) == "wrong issuer"
    assert requested == ["/keys/.well-known/jwks.json"]


def test_for_user_pool_derives_the_jwks_url_from_the_issuer(
    rsa_key: rsa.RSAPrivateKey, jwks_server: tuple[str, list[str]]
) -> None:
    base, requested = jwks_server
    issuer = f"{base}/us-east-1_Local"
    verifier_ = TokenVerifier.for_user_pool(
        region="us-east-1", user_pool_id="us-east-1_Local", client_id=CLIENT_ID, issuer=issuer
    )

    assert verifier_.verify(sign(rsa_key, cognito_claims(time.time(), iss=issuer))).username == "alice"
    assert requested == ["/us-east-1_Local/.well-known/jwks.json"]


@pytest.mark.parametrize(
    "url",
    [
        "http://cognito-idp.us-east-1.amazonaws.com/pool/.well-known/jwks.json",
        "http://localhost.evil.example/.well-known/jwks.json",
        "file:///etc/passwd",
        "ftp://127.0.0.1/jwks.json",
    ],
)
def test_insecure_jwks_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="https"):
        TokenVerifier.for_user_pool(region="us-east-1", user_pool_id="p", client_id=CLIENT_ID, jwks_url=url)


def test_http_error_from_jwks_endpoint_is_reported(
    rsa_key: rsa.RSAPrivateKey, jwks_server: tuple[str, list[str]]
) -> None:
    base, _ = jwks_server
    verifier_ = TokenVerifier.for_user_pool(
        region="us-east-1", user_pool_id="us-east-1_TestPool", client_id=CLIENT_ID, jwks_url=f"{base}/missing"
    )

    with pytest.raises(KeySetUnavailable):
        verifier_.verify(sign(rsa_key, cognito_claims(time.time())))


def test_invalid_token_message_never_contains_the_token(
    rsa_key: rsa.RSAPrivateKey, custom: TokenVerifier, fake_clock: FakeClock
) -> None:
    token = sign(rsa_key, cognito_claims(fake_clock.now, client_id="another-client"))

    with pytest.raises(InvalidToken) as caught:
        custom.verify(token)

    assert token not in str(caught.value)
    assert token.split(".")[1] not in repr(caught.value)
