"""Errors the user sees as one clear line; the CLI maps each class to an exit code."""


class DocuSignBillingError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(DocuSignBillingError):
    """The configuration or credentials are incomplete or malformed."""


class ApiError(DocuSignBillingError):
    """DocuSign answered with an error, or could not be reached."""

    def __init__(
        self, message: str, account_id: str, status: int | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.account_id = account_id
        self.status = status
        self.code = code


class AuthError(ApiError):
    """Authentication failed: the credentials were rejected (HTTP 401, a DocuSign authentication
    error code, an OAuth grant refused), or the OAuth server could not be reached."""

    @property
    def rejected(self) -> bool:
        """The server said no (a 4xx answer): running again with the same credentials cannot
        succeed. False when it could not be reached or failed (5xx): a retry may."""
        return self.status is not None and 400 <= self.status < 500


class ResponseError(DocuSignBillingError):
    """A response arrived but its content cannot be read as past-due invoices."""
