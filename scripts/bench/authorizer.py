"""The ``$connect`` authorizer's token check: a warm key-set cache against a fetch on every call (the original).

A token is minted with an RSA key made here and verified by :class:`assistant.token_verifier.TokenVerifier` against
a JWKS served over HTTP on 127.0.0.1. Warm: one verifier, which fetched the key set once. Baseline: a new verifier per
call, so every verification fetches the JWKS first, as the original authorizer did. A fetch here is a loopback
round trip (about a millisecond); a real one goes to Cognito over the internet, so the real ratio is larger.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from assistant.token_verifier import TokenVerifier, url_jwks_source
from scripts.bench.markdown import markdown_table, times
from scripts.bench.stats import ratio

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_bench"
CLIENT_ID = "benchclient"
KEY_ID = "bench-key"


@dataclass(frozen=True)
class Rate:
    calls: int
    elapsed_s: float

    @property
    def per_s(self) -> float:
        return self.calls / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class AuthorizerResult:
    warm: Rate
    cold: Rate
    jwks_fetches_warm: int
    jwks_fetches_cold: int

    @property
    def speedup(self) -> float:
        return ratio(self.warm.per_s, self.cold.per_s)


def mint(private_key: rsa.RSAPrivateKey, *, now: float) -> str:
    claims = {
        "sub": "00000000-0000-4000-8000-000000000000",
        "iss": ISSUER,
        "client_id": CLIENT_ID,
        "token_use": "access",
        "username": "bench@example.com",
        "iat": int(now),
        "exp": int(now) + 3600,
    }
    return jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": KEY_ID})


def jwks_document(private_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    return {"keys": [public | {"kid": KEY_ID, "alg": "RS256", "use": "sig"}]}


@contextmanager
def jwks_server(document: dict[str, Any]) -> Iterator[tuple[str, Callable[[], int]]]:
    """The JWKS at ``http://127.0.0.1:<port>/.well-known/jwks.json``; yields the URL and a fetch counter."""
    body = json.dumps(document).encode()
    fetches = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches[0] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="bench-jwks", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", lambda: fetches[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _rate(verify: Callable[[], object], *, max_calls: int, max_s: float) -> Rate:
    """Call ``verify`` until ``max_calls`` or ``max_s``, whichever comes first."""
    calls = 0
    started = time.perf_counter()
    deadline = started + max_s
    while calls < max_calls and time.perf_counter() < deadline:
        verify()
        calls += 1
    return Rate(calls=calls, elapsed_s=time.perf_counter() - started)


def run(*, max_calls: int, max_s: float) -> AuthorizerResult:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = mint(private_key, now=time.time())
    with jwks_server(jwks_document(private_key)) as (url, fetches):
        source = url_jwks_source(url)

        def cold() -> object:
            return TokenVerifier(issuer=ISSUER, client_id=CLIENT_ID, jwks_source=source).verify(token)

        warm_verifier = TokenVerifier(issuer=ISSUER, client_id=CLIENT_ID, jwks_source=source)
        warm_verifier.verify(token)  # the container's first call fetches; the rest are what we measure
        cold()  # same warm-up for the baseline's code path
        before = fetches()
        warm = _rate(lambda: warm_verifier.verify(token), max_calls=max_calls, max_s=max_s)
        warm_fetches = fetches() - before
        before = fetches()
        cold_rate = _rate(cold, max_calls=max_calls, max_s=max_s)
        cold_fetches = fetches() - before
    return AuthorizerResult(warm=warm, cold=cold_rate, jwks_fetches_warm=warm_fetches, jwks_fetches_cold=cold_fetches)


def authorizer_section(auth: AuthorizerResult) -> list[str]:
    rows = [
        [
            "JWKS fetched on every call (original, baseline)",
            f"{auth.cold.per_s:,.0f}",
            str(auth.jwks_fetches_cold),
            "1.00x",
        ],
        [
            "warm JWKS cache (`TokenVerifier`)",
            f"{auth.warm.per_s:,.0f}",
            str(auth.jwks_fetches_warm),
            times(auth.speedup),
        ],
    ]
    return [
        "## Authorizer",
        "",
        "RS256 access tokens minted here, verified by `assistant.token_verifier.TokenVerifier` (signature, issuer, "
        "times, `token_use`, `client_id`), single thread. The JWKS is served over HTTP on 127.0.0.1: a loopback fetch "
        "costs far less than one to Cognito, so the real ratio is larger.",
        "",
        markdown_table(["verifier", "verifications/s", "JWKS fetches", "ratio"], rows),
        "",
    ]
