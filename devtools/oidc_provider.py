"""A local OpenID Connect provider for the tests: discovery, JWKS, authorize, token and userinfo on
127.0.0.1, with an RSA key made at start.

Authorize consents at once for the configured person and redirects back with a code and the
state; the token endpoint answers with an ID token signed by that key (RS256) that carries the
nonce, the email and ``email_verified``. The knobs the tests turn (``user``, ``tamper``,
``wrong_nonce``) are plain attributes. Not part of the product; no Django import.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KID = "stand-in-key"


@dataclass
class Person:
    """Who the provider says signed in."""

    email: str
    sub: str = field(default_factory=lambda: secrets.token_hex(8))
    email_verified: bool = True
    name: str = ""


def _jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def b64(number: int) -> str:
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID, "n": b64(numbers.n), "e": b64(numbers.e)}


class OidcProvider:
    """The provider; ``start()`` serves it on a free port of 127.0.0.1 until ``stop()``."""

    def __init__(self, *, client_id: str = "chat", client_secret: str | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(16)
        self.user = Person(email="ada@example.com")
        # Sign the ID token with a key the JWKS does not publish.
        self.tamper = False
        # Put another nonce in the ID token than the one authorize was given.
        self.wrong_nonce = False
        # Make the ID token out to another client than the one that asked.
        self.audience: str | None = None
        # False: no discovery document (a provider whose endpoints are configured one by one).
        self.serves_discovery = True
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # code -> (who, the nonce, the PKCE challenge) as authorize was given them
        self._codes: dict[str, tuple[Person, str, str]] = {}
        self._tokens: dict[str, Person] = {}
        self._server: ThreadingHTTPServer | None = None
        self.token_requests: list[dict[str, str]] = []

    @property
    def issuer(self) -> str:
        assert self._server is not None, "start() the provider first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> OidcProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                provider._get(self)

            def do_POST(self) -> None:
                provider._post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def discovery(self) -> dict[str, object]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def _claims(self, person: Person) -> dict[str, object]:
        return {"sub": person.sub, "email": person.email, "email_verified": person.email_verified, "name": person.name}

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, body: object, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        if url.path == "/.well-known/openid-configuration" and self.serves_discovery:
            self._send(handler, 200, self.discovery())
        elif url.path == "/jwks":
            self._send(handler, 200, {"keys": [_jwk(self._key)]})
        elif url.path == "/authorize":
            if query.get("client_id") != self.client_id or query.get("response_type") != "code":
                self._send(handler, 400, {"error": "invalid_request"})
                return
            code = secrets.token_urlsafe(16)
            self._codes[code] = (self.user, query.get("nonce", ""), query.get("code_challenge", ""))
            back = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
            handler.send_response(302)
            handler.send_header("Location", back)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif url.path == "/userinfo":
            token = handler.headers.get("Authorization", "").removeprefix("Bearer ")
            person = self._tokens.get(token)
            if person is None:
                self._send(handler, 401, {"error": "invalid_token"})
            else:
                self._send(handler, 200, self._claims(person))
        else:
            self._send(handler, 404, {"error": "not_found"})

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        form = {name: values[0] for name, values in parse_qs(handler.rfile.read(length).decode()).items()}
        self.token_requests.append(form)
        if urlsplit(handler.path).path != "/token":
            self._send(handler, 404, {"error": "not_found"})
            return
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            self._send(handler, 401, {"error": "invalid_client"})
            return
        found = self._codes.pop(form.get("code", ""), None)
        if found is None or form.get("grant_type") != "authorization_code":
            self._send(handler, 400, {"error": "invalid_grant"})
            return
        person, nonce, challenge = found
        verifier = form.get("code_verifier", "")
        if (
            challenge
            and base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode() != challenge
        ):
            self._send(handler, 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
            return
        now = int(time.time())
        claims = {
            **self._claims(person),
            "iss": self.issuer,
            "aud": self.audience or self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": "another-nonce" if self.wrong_nonce else nonce,
        }
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if self.tamper else self._key
        id_token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})
        access_token = secrets.token_urlsafe(16)
        self._tokens[access_token] = person
        self._send(
            handler,
            200,
            {"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token},
            {"Cache-Control": "no-store"},
        )


def main() -> None:
    """Serve a provider for a person trying the sign-in by hand: prints its issuer and secret."""
    provider = OidcProvider().start()
    print(
        f"OIDC_ISSUER={provider.issuer} OIDC_CLIENT_ID={provider.client_id} OIDC_CLIENT_SECRET={provider.client_secret}"
    )
    print(f"signs in as {provider.user.email}; Ctrl-C stops it")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        provider.stop()


if __name__ == "__main__":
    main()
