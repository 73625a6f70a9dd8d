"""The sandbox's account server: `/oauth/token` (JWT and refresh-token grants) and `/oauth/userinfo`.

It checks what DocuSign checks: the assertion's RS256 signature against the integration's
public key, `iss`/`sub`/`aud`/`exp`/scope, the user's consent, and the refresh-token client.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import jwt

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
INTEGRATION_KEY = "sandbox-integration-key"
USER_ID = "4b1d5c1e-0000-4000-8000-5a4db0c5e11d"
CLIENT_ID = "sandbox-client-id"
REQUIRED_SCOPES = {"signature", "impersonation"}

Reply = tuple[int, dict[str, Any]]


@dataclass
class OAuthAuthority:
    """Issues short-lived access tokens through `issue(token, lifetime)` of the API server."""

    issue: Callable[[str, float], None]
    accounts: Callable[[], list[dict[str, Any]]]
    audience: str = "127.0.0.1"
    token_lifetime: float = 3600.0
    public_key: str | None = None
    consented: bool = True
    client_secret: str = "sandbox-client-secret"
    refresh_tokens: set[str] = field(default_factory=lambda: {"sandbox-refresh-token"})
    tokens_issued: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, method: str, path: str, headers: Any, body: bytes, bearer_valid: bool
    ) -> Reply | None:
        """The reply for an `/oauth/...` request, or None for any other path."""
        if path == "/oauth/token" and method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            return self._token(form, headers)
        if path == "/oauth/userinfo" and method == "GET":
            if not bearer_valid:
                return 401, {
                    "error": "invalid_token",
                    "error_description": "the access token is invalid or expired",
                }
            user = {
                "sub": USER_ID,
                "name": "Sandbox Administrator",
                "email": "admin@sandbox.example",
            }
            return 200, {**user, "accounts": self.accounts()}
        return None

    def _token(self, form: dict[str, str], headers: Any) -> Reply:
        grant = form.get("grant_type")
        if grant == JWT_BEARER:
            failure = self._check_assertion(form.get("assertion", ""))
        elif grant == "refresh_token":
            failure = self._check_refresh(
                form.get("refresh_token", ""), headers.get("Authorization", "")
            )
        else:
            failure = (400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")
        if failure:
            status, error, description = failure
            return status, {"error": error, "error_description": description}
        token = f"sandbox-oauth-{secrets.token_hex(8)}"
        self.issue(token, self.token_lifetime)
        with self._lock:
            self.tokens_issued += 1
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime) or 1,
        }

    def _check_assertion(self, assertion: str) -> tuple[int, str, str] | None:
        if self.public_key is None:
            return 400, "invalid_grant", "no key pair is registered for this integration key"
        try:
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=INTEGRATION_KEY,
                options={"require": ["iss", "sub", "aud", "iat", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            return 400, "invalid_grant", "the assertion has expired"
        except jwt.InvalidTokenError as ex:
            return 400, "invalid_grant", f"the assertion is invalid ({type(ex).__name__})"
        if claims.get("sub") != USER_ID:
            return 400, "invalid_grant", "no such user"
        if not REQUIRED_SCOPES <= set(str(claims.get("scope", "")).split()):
            return 400, "invalid_scope", "scope must include signature impersonation"
        if not self.consented:
            return 400, "consent_required", ""
        return None

    def _check_refresh(self, refresh_token: str, authorization: str) -> tuple[int, str, str] | None:
        scheme, _, encoded = authorization.partition(" ")
        try:
            client = base64.b64decode(encoded).decode() if scheme.lower() == "basic" else ""
        except ValueError:
            client = ""
        if client != f"{CLIENT_ID}:{self.client_secret}":
            return 401, "invalid_client", "client authentication failed"
        if refresh_token not in self.refresh_tokens:
            return 400, "invalid_grant", "the refresh token is invalid or revoked"
        return None
