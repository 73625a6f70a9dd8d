"""Credentials from dlt config/secrets, turned into the `requests` auth DocuSign expects."""

import json
from collections.abc import Callable
from pathlib import Path

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue
from requests import PreparedRequest
from requests.auth import AuthBase

from . import settings
from .errors import ConfigError
from .oauth import JwtGrantAuth, OAuthServer, RefreshTokenAuth

SECTION = "sources.docusign_billing.credentials"


@configspec
class DocuSignCredentials(CredentialsConfiguration):
    """`[sources.docusign_billing.credentials]`; `auth` picks which of the other fields apply."""

    auth: str = "token"
    # auth = "token": an OAuth access token obtained elsewhere
    access_token: TSecretStrValue | None = None
    # auth = "legacy": DocuSign's deprecated header
    username: str | None = None
    password: TSecretStrValue | None = None
    integrator_key: TSecretStrValue | None = None
    # auth = "jwt": OAuth JWT grant (service integrations)
    integration_key: str | None = None
    user_id: str | None = None
    private_key: TSecretStrValue | None = None
    private_key_path: str | None = None
    # auth = "refresh_token": OAuth authorization-code grant
    client_id: str | None = None
    client_secret: TSecretStrValue | None = None
    refresh_token: TSecretStrValue | None = None
    # all OAuth methods
    oauth_base_url: str = settings.OAUTH_BASE_URL
    scopes: str = settings.OAUTH_SCOPES
    redirect_uri: str = settings.CONSENT_REDIRECT_URI

    def __str__(self) -> str:
        # never the secret fields: this string may end up in logs or traces
        return f"DocuSign credentials ({self.auth})"

    @property
    def method(self) -> str:
        return (self.auth or "").strip().lower()

    @property
    def is_oauth(self) -> bool:
        """Bearer methods, which can discover accounts through `/oauth/userinfo`."""
        return self.method in ("token", "jwt", "refresh_token")


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


def _require(credentials: DocuSignCredentials, *fields: str) -> list[str]:
    """The values of `fields`, in order; a `ConfigError` naming every one that is not set."""
    values = [getattr(credentials, f) for f in fields]
    missing = [f for f, value in zip(fields, values) if not value]
    if missing and not _any_credential_set(credentials):
        raise ConfigError(
            f"no DocuSign credentials are configured: set [{SECTION}] in .dlt/secrets.toml or the"
            f" environment (README: Configuring real DocuSign), or run `docusign-billing demo` for the sandbox"
        )
    if missing:
        names = ", ".join(f"{SECTION}.{f}" for f in missing)
        raise ConfigError(
            f'auth = "{credentials.auth}" needs {names} (in .dlt/secrets.toml or the environment)'
        )
    return values


def _sendable(credentials: DocuSignCredentials, *fields: str) -> list[str]:
    """`_require`'s values as they go into HTTP headers and form bodies: surrounding whitespace
    stripped (a trailing newline from `cat token` or a TOML multi-line string is common); a
    `ConfigError` naming the field, never its value, when one is still an example's `<...>`
    placeholder or holds whitespace or a control character (HTTP would refuse the header,
    printing it in full)."""
    values = [str(value).strip() for value in _require(credentials, *fields)]
    for field, value in zip(fields, values):
        if not value:
            raise ConfigError(f"{SECTION}.{field} is only whitespace")
        if value.startswith("<") and value.endswith(">"):
            raise ConfigError(
                f"{SECTION}.{field} is still a placeholder of .dlt/secrets.toml.example"
                " (<...>): set your own value"
            )
        if any(c.isspace() or not c.isprintable() for c in value):
            raise ConfigError(
                f"{SECTION}.{field} holds whitespace or a control character inside it"
                " (the value is not shown)"
            )
    return values


# The fields that only a user sets: `auth` has a default, the OAuth host and scopes too.
CREDENTIAL_FIELDS = (
    "access_token",
    "username",
    "password",
    "integrator_key",
    "integration_key",
    "user_id",
    "private_key",
    "private_key_path",
    "client_id",
    "client_secret",
    "refresh_token",
)


def _any_credential_set(credentials: DocuSignCredentials) -> bool:
    return any(getattr(credentials, name) for name in CREDENTIAL_FIELDS)


def _private_key(credentials: DocuSignCredentials) -> str:
    if credentials.private_key:
        return credentials.private_key
    path = credentials.private_key_path or _require(credentials, "private_key")[0]  # raises
    try:
        return Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as ex:
        raise ConfigError(
            f"private_key_path {credentials.private_key_path!r} cannot be read ({type(ex).__name__})"
        ) from None


def _legacy(credentials: DocuSignCredentials) -> AuthBase:
    return LegacyHeaderAuth(*_sendable(credentials, "username", "password", "integrator_key"))


def _token(credentials: DocuSignCredentials) -> AuthBase:
    (access_token,) = _sendable(credentials, "access_token")
    return BearerAuth(access_token)


def _jwt(credentials: DocuSignCredentials) -> AuthBase:
    integration_key, user_id = _sendable(credentials, "integration_key", "user_id")
    return JwtGrantAuth(
        OAuthServer(credentials.oauth_base_url),
        integration_key,
        user_id,
        _private_key(credentials),
        credentials.scopes,
        credentials.redirect_uri,
    )


def _refresh_token(credentials: DocuSignCredentials) -> AuthBase:
    return RefreshTokenAuth(
        OAuthServer(credentials.oauth_base_url),
        *_sendable(credentials, "client_id", "client_secret", "refresh_token"),
    )


AUTH_METHODS: dict[str, Callable[[DocuSignCredentials], AuthBase]] = {
    "legacy": _legacy,
    "token": _token,
    "jwt": _jwt,
    "refresh_token": _refresh_token,
}


def make_auth(credentials: DocuSignCredentials) -> AuthBase:
    """Validates the credentials for their `auth` method and returns the matching auth."""
    method = AUTH_METHODS.get(credentials.method)
    if method is None:
        known = ", ".join(f'"{name}"' for name in AUTH_METHODS)
        raise ConfigError(f'{SECTION}.auth = "{credentials.auth}" is not one of {known}')
    return method(credentials)
