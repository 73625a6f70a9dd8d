"""Every failure as one line and a documented exit code (the README's exit-code table).

0 loaded; 1 the run failed, worth a retry (API, response or destination error, another run in
progress); 2 needs a human (configuration, rejected credentials, consent); 3 some accounts failed,
the others loaded; 4 nothing to report (`report`); 130 / 143 stopped by SIGINT / SIGTERM. Secrets never reach these messages.
"""

import codecs
import os
import tomllib

from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
    LookupTrace,
    LookupTraces,
)
from dlt.common.configuration.providers.toml import TomlProviderReadException
from dlt.common.destination.exceptions import DestinationException, UnknownDestinationModule
from dlt.common.exceptions import MissingDependencyException
from requests.exceptions import InvalidHeader

from sources.docusign_billing.errors import AuthError, ConfigError, DocuSignBillingError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_NO_DATA = 4
"""`report` found nothing to report: no load yet, or no run at or before `--as-of`."""
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
EXIT_INTERRUPTED = EXIT_SIGINT
CONFIG_FILES = ".dlt/config.toml, .dlt/secrets.toml or the environment"


def causes(ex: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (dlt wraps errors of each pipeline step)."""
    chain: list[BaseException] = []
    current: BaseException | None = ex
    while current is not None and current not in chain:
        chain.append(current)
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return chain


def first_line(ex: BaseException) -> str:
    return (str(ex).strip().splitlines() or [type(ex).__name__])[0]


def missing_setting(ex: ConfigFieldMissingException) -> str:
    """The missing fields as the config keys dlt looked them up by, e.g.
    `destination.postgres.credentials.password` (the section the user must fill in)."""
    names = []
    for field, traces in ex.traces.items():
        trace = traces[0] if traces else None
        while isinstance(trace, LookupTraces):  # a nested configuration: its first missing field
            nested = next(iter(trace.traces.values()), [])
            trace = nested[0] if nested else None
        if isinstance(trace, LookupTrace):
            names.append(".".join([*trace.sections, trace.key]))
        else:
            names.append(field)
    return ", ".join(dict.fromkeys(names))


def unreadable_toml(ex: TomlProviderReadException) -> str:
    """Which of the TOML files dlt read is malformed, where (line and column) and why."""
    for path in ex.full_paths:
        try:
            with open(path, "rb") as file:
                tomllib.load(file)
        except OSError:
            continue  # not there: dlt skips it too
        except tomllib.TOMLDecodeError as error:
            with open(path, "rb") as file:
                if file.read(3) == codecs.BOM_UTF8:  # some Windows editors write one
                    return (
                        f"{os.path.abspath(path)} starts with a UTF-8 byte-order mark, which TOML"
                        " does not allow: save it as UTF-8 without BOM"
                    )
            return f"{os.path.abspath(path)} is not valid TOML: {error}"
        except UnicodeDecodeError as error:  # TOML is UTF-8 only
            return (
                f"{os.path.abspath(path)} is not UTF-8 (TOML files must be): byte"
                f" 0x{error.object[error.start]:02X} at offset {error.start}"
            )
    return f"{ex.file_name} is not valid TOML: {first_line(causes(ex)[-1])}"


def _invalid_header(ex: BaseException) -> bool:
    """A header `requests` (`InvalidHeader`) or `http.client` (a `ValueError` "Invalid header
    value b'Bearer ...'") refused to send: messages that print the value in full."""
    return isinstance(ex, InvalidHeader) or (
        isinstance(ex, ValueError) and str(ex).startswith("Invalid header")
    )


def explain(ex: BaseException) -> tuple[int, str]:
    """One line and an exit code for any failure."""
    chain = causes(ex)
    for cause in chain:
        if isinstance(cause, ConfigError):
            return EXIT_CONFIG, f"configuration error: {cause}"
        if isinstance(cause, AuthError) and cause.rejected:
            return EXIT_CONFIG, f"credentials rejected: {cause}"
        if isinstance(cause, DocuSignBillingError):
            return EXIT_FAILED, str(cause)
        if isinstance(cause, ConfigFieldMissingException):
            return EXIT_CONFIG, (
                f"configuration error: {missing_setting(cause)} is not set (in {CONFIG_FILES},"
                " e.g. SECTION__KEY environment variables)"
            )
        if isinstance(cause, ConfigValueCannotBeCoercedException):
            hint = getattr(cause.hint, "__name__", str(cause.hint))
            return EXIT_CONFIG, (
                f"configuration error: {cause.field_name} = {cause.field_value!r} is not a valid"
                f" {hint} (in {CONFIG_FILES})"
            )
        if isinstance(cause, TomlProviderReadException):
            return EXIT_CONFIG, f"configuration error: {unreadable_toml(cause)}"
        if isinstance(cause, UnknownDestinationModule):
            return EXIT_CONFIG, (
                f"configuration error: unknown destination {cause.ref!r}"
                " (a dlt destination name such as duckdb, postgres, bigquery, snowflake)"
            )
        if _invalid_header(cause):  # its message holds the header's value: maybe a secret
            return EXIT_CONFIG, (
                "configuration error: a value sent in an HTTP header holds a character headers"
                " cannot carry (e.g. a line break; the value is not shown)"
            )
        if isinstance(cause, MissingDependencyException):
            packages = " ".join(f'"{d}"' for d in cause.dependencies)
            return EXIT_CONFIG, (
                f"configuration error: {cause.caller} needs packages that are not installed:"
                f" pip install {packages} (or the project's extra, e.g. pip install -e '.[postgres]')"
            )
    deepest = chain[-1]
    kind = (
        "destination error" if any(isinstance(c, DestinationException) for c in chain) else "error"
    )
    return EXIT_FAILED, f"{kind}: {first_line(deepest)}"
