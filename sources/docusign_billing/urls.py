"""The one check for every configured URL: http(s) with a host, no trailing slash."""

from urllib.parse import urlsplit

from .errors import ConfigError


def http_url(value: object, setting: str, example: str) -> str:
    """`value` as an http(s) URL without a trailing slash, or a `ConfigError` naming `setting`."""
    parts = urlsplit(str(value or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{setting} {value!r} is not an http(s) URL like {example}")
    return parts.geturl().rstrip("/")
