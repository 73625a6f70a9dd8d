"""Credentials from dlt config/secrets, turned into the `requests` auth DocuSign expects."""

import json
from typing import Callable, Dict, Optional

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue
from requests import PreparedRequest
from requests.auth import AuthBase

from .errors import ConfigError

SECTION = "sources.docusign_billing.credentials"


@configspec
class DocuSignCredentials(CredentialsConfiguration):
    """`[sources.docusign_billing.credentials]`; `auth` picks which of the other fields apply."""

    auth: str = "token"
    access_token: Optional[TSecretStrValue] = None
    username: Optional[str] = None
    password: Optional[TSecretStrValue] = None
    integrator_key: Optional[TSecretStrValue] = None

    def __str__(self) -> str:
        # never the secret fields: this string may end up in logs or traces
        return f"DocuSign credentials ({self.auth})"


class LegacyHeaderAuth(AuthBase):
    """DocuSign's legacy `X-DocuSign-Authentication` header (JSON form)."""

    def __init__(self, username: str, password: str, integrator_key: str) -> None:
        self._header = json.dumps(
            {"Username": username, "Password": password, "IntegratorKey": integrator_key}
        )

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["X-DocuSign-Authentication"] = self._header
        return request

    def __repr__(self) -> str:
        return "LegacyHeaderAuth(***)"


class BearerAuth(AuthBase):
    """`Authorization: Bearer` with an OAuth access token obtained elsewhere."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def _require(credentials: DocuSignCredentials, *fields: str) -> None:
    missing = [f for f in fields if not getattr(credentials, f)]
    if missing:
        names = ", ".join(f"{SECTION}.{f}" for f in missing)
        raise ConfigError(f'auth = "{credentials.auth}" needs {names} (in .dlt/secrets.toml or the environment)')


def _legacy(credentials: DocuSignCredentials) -> AuthBase:
    _require(credentials, "username", "password", "integrator_key")
    return LegacyHeaderAuth(credentials.username, credentials.password, credentials.integrator_key)


def _token(credentials: DocuSignCredentials) -> AuthBase:
    _require(credentials, "access_token")
    return BearerAuth(credentials.access_token)


AUTH_METHODS: Dict[str, Callable[[DocuSignCredentials], AuthBase]] = {
    "legacy": _legacy,
    "token": _token,
}


def make_auth(credentials: DocuSignCredentials) -> AuthBase:
    """Validates the credentials for their `auth` method and returns the matching auth."""
    method = AUTH_METHODS.get((credentials.auth or "").strip().lower())
    if method is None:
        known = ", ".join(f'"{name}"' for name in AUTH_METHODS)
        raise ConfigError(f'{SECTION}.auth = "{credentials.auth}" is not one of {known}')
    return method(credentials)
