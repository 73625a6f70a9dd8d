"""OAuth with DocuSign's account server: JWT and refresh-token grants, cached tokens, userinfo.

dlt's `OAuthJWTAuth` does not fit: DocuSign wants `sub` = the impersonated user and `aud` = the
OAuth host name, and answers `consent_required` in a body that `raise_for_status` would drop.
"""

import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dlt.sources.helpers.requests import Client
from requests import PreparedRequest, RequestException, Response
from requests.auth import AuthBase, HTTPBasicAuth

from . import settings
from .errors import AuthError, ConfigError
from .urls import http_url

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class AccountInfo:
    """An account the credentials can reach, from `/oauth/userinfo`."""

    account_id: str
    account_name: str | None
    base_uri: str | None
    is_default: bool

    @property
    def base_url(self) -> str | None:
        """The REST base of the account's own host (accounts live on different hosts)."""
        return f"{self.base_uri.rstrip('/')}/restapi" if self.base_uri else None


class OAuthServer:
    """`{oauth_base_url}/oauth/token` and `/oauth/userinfo`, through dlt's retrying client."""

    def __init__(
        self, oauth_base_url: str, request_timeout: float = settings.REQUEST_TIMEOUT
    ) -> None:
        self.base_url = http_url(oauth_base_url, "oauth_base_url", settings.OAUTH_BASE_URL)
        self.audience = urlsplit(self.base_url).hostname  # DocuSign's `aud`: the host name alone
        self._http = Client(request_timeout=request_timeout, raise_for_status=False)

    def token(
        self, form: dict[str, str], auth: AuthBase | None = None, consent_url: str = ""
    ) -> tuple[str, float]:
        """Exchanges a grant for `(access_token, lifetime seconds)`."""
        response = self._send("POST", "/oauth/token", data=form, auth=auth)
        body = _json(response)
        if response.status_code == 200 and body.get("access_token"):
            return body["access_token"], float(body.get("expires_in") or 3600)
        error = str(body.get("error") or f"HTTP {response.status_code}")
        if error == "consent_required":
            raise ConfigError(
                f"DocuSign needs the user's consent once for this integration key: open {consent_url}"
            )
        detail = body.get("error_description") or ""
        raise AuthError(
            f"DocuSign OAuth at {self.base_url} refused the grant ({error}{': ' + detail if detail else ''});"
            " check the integration key, user id, key pair or refresh token",
            account_id="-",
            status=response.status_code,
            code=error,
        )

    def userinfo(self, auth: AuthBase) -> list[AccountInfo]:
        response = self._send("GET", "/oauth/userinfo", auth=auth)
        if response.status_code != 200:
            raise AuthError(
                f"DocuSign OAuth at {self.base_url} refused /oauth/userinfo (HTTP {response.status_code})",
                account_id="-",
                status=response.status_code,
            )
        return [
            AccountInfo(
                account_id=str(a.get("account_id")),
                account_name=a.get("account_name"),
                base_uri=a.get("base_uri"),
                is_default=str(a.get("is_default")).lower() == "true",
            )
            for a in _json(response).get("accounts") or []
        ]

    def _send(self, method: str, path: str, **kwargs: Any) -> Response:
        try:
            return self._http.request(method, self.base_url + path, **kwargs)
        except RequestException as ex:
            raise AuthError(
                f"DocuSign OAuth at {self.base_url} could not be reached after retries ({type(ex).__name__})",
                account_id="-",
            ) from None


def _json(response: Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class CachedTokenAuth(AuthBase):
    """Bearer auth whose token is obtained by a grant, cached, and renewed before it expires.

    Thread-safe: concurrent account fetches share one token and one renewal.
    """

    def __init__(self, server: OAuthServer) -> None:
        self.server = server
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.tokens_obtained = 0

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"

    def access_token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                token, lifetime = self.grant()
                margin = min(settings.TOKEN_RENEW_MARGIN, lifetime * 0.2)
                self._token, self._renew_at = token, time.monotonic() + lifetime - margin
                self.tokens_obtained += 1
            return self._token

    def invalidate(self, rejected: PreparedRequest) -> None:
        """Drops the cached token if `rejected` carried it (revoked or expired early); comparing
        tokens lets concurrent callers that were all rejected renew it only once."""
        with self._lock:
            if rejected.headers.get("Authorization") == f"Bearer {self._token}":
                self._token = None

    def grant(self) -> tuple[str, float]:
        raise NotImplementedError


class JwtGrantAuth(CachedTokenAuth):
    """OAuth JWT grant: an RS256 assertion signed with the integration's private key."""

    def __init__(
        self,
        server: OAuthServer,
        integration_key: str,
        user_id: str,
        private_key: str,
        scopes: str,
        redirect_uri: str,
    ) -> None:
        super().__init__(server)
        self._integration_key, self._user_id, self._scopes = integration_key, user_id, scopes
        self._redirect_uri = redirect_uri
        try:
            key = serialization.load_pem_private_key(private_key.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, rsa.RSAPrivateKey):  # RS256 signs with RSA keys only
            raise ConfigError("private_key is not an unencrypted PEM RSA private key")
        self._key = key

    def consent_url(self) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "scope": self._scopes,
                "client_id": self._integration_key,
                "redirect_uri": self._redirect_uri,
            }
        )
        return f"{self.server.base_url}/oauth/auth?{query}"

    def grant(self) -> tuple[str, float]:
        now = int(time.time())
        claims = {
            "iss": self._integration_key,
            "sub": self._user_id,
            "aud": self.server.audience,
            "iat": now,
            "exp": now + settings.JWT_ASSERTION_LIFETIME,
            "scope": self._scopes,
        }
        assertion = jwt.encode(claims, self._key, algorithm="RS256")
        return self.server.token(
            {"grant_type": JWT_BEARER, "assertion": assertion}, consent_url=self.consent_url()
        )


class RefreshTokenAuth(CachedTokenAuth):
    """Authorization-code grant: a long-lived refresh token exchanged for access tokens."""

    def __init__(
        self, server: OAuthServer, client_id: str, client_secret: str, refresh_token: str
    ) -> None:
        super().__init__(server)
        self._client = HTTPBasicAuth(client_id, client_secret)
        self._refresh_token = refresh_token

    def grant(self) -> tuple[str, float]:
        return self.server.token(
            {"grant_type": "refresh_token", "refresh_token": self._refresh_token}, auth=self._client
        )
