"""Local DocuSign-compatible sandbox API: real HTTP on 127.0.0.1 with deterministic data and fault injection."""

from .data import generate_response
from .oauth import CLIENT_ID, INTEGRATION_KEY, USER_ID
from .server import ACCESS_TOKEN, LEGACY_CREDENTIALS, Sandbox

__all__ = [
    "ACCESS_TOKEN",
    "CLIENT_ID",
    "INTEGRATION_KEY",
    "LEGACY_CREDENTIALS",
    "USER_ID",
    "Sandbox",
    "generate_response",
]
