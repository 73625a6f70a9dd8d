"""Local DocuSign-compatible sandbox API: real HTTP on 127.0.0.1 with deterministic data and fault injection."""

from .data import generate_response
from .server import ACCESS_TOKEN, LEGACY_CREDENTIALS, Sandbox

__all__ = ["ACCESS_TOKEN", "LEGACY_CREDENTIALS", "Sandbox", "generate_response"]
