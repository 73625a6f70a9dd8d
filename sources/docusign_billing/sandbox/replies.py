"""The sandbox's answers: DocuSign's error bodies, gateway pages, and the reply tuple."""

from __future__ import annotations

import json

from .limits import HOURLY

ERRORS = {
    "missing": (
        401,
        "USER_AUTHENTICATION_FAILED",
        "One or both of Username and Password are invalid. Invalid access token",
    ),
    "user": (
        401,
        "USER_AUTHENTICATION_FAILED",
        "One or both of Username and Password are invalid.",
    ),
    "partner": (
        401,
        "PARTNER_AUTHENTICATION_FAILED",
        "The specified Integrator Key was not found or is disabled.",
    ),
    "token": (
        401,
        "AUTHORIZATION_INVALID_TOKEN",
        "The access token provided is expired, revoked or malformed.",
    ),
    "account": (
        400,
        "USER_DOES_NOT_BELONG_TO_SPECIFIED_ACCOUNT",
        "The specified User is not a member of the specified Account.",
    ),
    "admin": (
        400,
        "USER_LACKS_PERMISSIONS",
        "This user lacks sufficient permissions to access this resource.",
    ),
    "404": (404, "RESOURCE_NOT_FOUND", "The URL provided does not resolve to a resource."),
    "429": (
        429,
        "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
        "The maximum number of hourly API invocations has been exceeded.",
    ),
    "hourly": (
        400,
        "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
        "The maximum number of hourly API invocations has been exceeded.",
    ),
    "burst": (
        400,
        "BURST_APIINVOCATION_LIMIT_EXCEEDED",
        "The maximum number of API invocations per 30 seconds has been exceeded.",
    ),
    "500": (500, "UNSPECIFIED_ERROR", "An unexpected error occurred while processing the request."),
    "502": (502, "BAD_GATEWAY", "The upstream server returned an invalid response."),
    "503": (
        503,
        "SERVICE_UNAVAILABLE",
        "The service is temporarily unavailable. Please retry later.",
    ),
    "504": (504, "GATEWAY_TIMEOUT", "The upstream server did not respond in time."),
}
GATEWAY_HTML = (
    "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center></body></html>\r\n"
)
GATEWAY_TITLES = {"502": "502 Bad Gateway", "504": "504 Gateway Time-out"}

Reply = tuple[int | None, bytes, str | None, dict[str, str]]
"""(status, body, content type or None for no header, extra headers); status None means "drop the connection"."""
DROP: Reply = (None, b"", "", {})


def json_reply(status: int, body: object, headers: dict[str, str] | None = None) -> Reply:
    return status, json.dumps(body).encode(), "application/json; charset=utf-8", headers or {}


def error(kind: str, headers: dict[str, str] | None = None) -> Reply:
    status, code, message = ERRORS[kind]
    return json_reply(status, {"errorCode": code, "message": message}, headers)


def throttled(code: str, headers: dict[str, str]) -> Reply:
    """DocuSign's 400 answer to a spent hourly or burst window (`limits.HOURLY` / `limits.BURST`)."""
    return error("hourly" if code == HOURLY else "burst", headers)
