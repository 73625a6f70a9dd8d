"""Which accounts a run loads, and on which host each one lives."""

import json
import re
from dataclasses import dataclass
from typing import Any

from requests.auth import AuthBase

from . import settings
from .auth import DocuSignCredentials
from .errors import ConfigError, ResponseError
from .oauth import AccountInfo, OAuthServer

_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
SELECTIONS = ("all", "default")


@dataclass(frozen=True)
class AccountTarget:
    """One account to fetch; `base_url` is None when the credentials cannot see the account."""

    account_id: str
    account_name: str | None
    base_url: str | None


def normalize_account_ids(account_ids: Any) -> list[str]:
    """One id (a string or a bare TOML number), a list, or a string holding a JSON list or
    comma/space separated ids; each once. None (not set) is no ids; set but empty is an error,
    never a silent switch to discovering every account."""
    if account_ids is None:
        return []
    if isinstance(account_ids, int) and not isinstance(account_ids, bool):
        account_ids = str(account_ids)
    if isinstance(account_ids, str):
        text = account_ids.strip()
        try:
            items = json.loads(text) if text.startswith("[") else re.split(r"[\s,]+", text)
        except ValueError:
            raise ConfigError(
                f"account_ids {text!r} is neither a JSON list nor comma separated ids"
            ) from None
    elif isinstance(account_ids, (list, tuple)):
        items = list(account_ids)
    else:
        raise ConfigError(
            f"sources.docusign_billing.account_ids = {account_ids!r} is not an id, a list of ids"
            " or comma separated ids"
        )
    ids = list(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
    if not ids:
        raise ConfigError(
            "no account ids: sources.docusign_billing.account_ids (or --accounts) is set but"
            " empty; leave it unset to load the accounts OAuth discovers"
        )
    bad = [i for i in ids if not _ACCOUNT_ID.match(i)]
    if bad:
        raise ConfigError(f"account id {bad[0]!r} is not a DocuSign account id (GUID or number)")
    return ids


def check_selection(
    account_ids: list[str], accounts: str, credentials: DocuSignCredentials
) -> None:
    """Fails at configuration time, before any request, when the run could not pick its accounts."""
    if accounts not in SELECTIONS:
        raise ConfigError(
            f"sources.docusign_billing.accounts = {accounts!r} is not one of {', '.join(SELECTIONS)}"
        )
    if not account_ids and not credentials.is_oauth:
        raise ConfigError(
            f'no account ids: set sources.docusign_billing.account_ids (auth = "{credentials.auth}"'
            " cannot discover accounts; OAuth methods can)"
        )


def discover(credentials: DocuSignCredentials, auth: AuthBase) -> list[AccountInfo]:
    """Every account the user behind the credentials can reach (`/oauth/userinfo`)."""
    return OAuthServer(credentials.oauth_base_url).userinfo(auth)


def plan(
    account_ids: list[str],
    accounts: str,
    base_url: str | None,
    credentials: DocuSignCredentials,
    auth: AuthBase,
) -> list[AccountTarget]:
    """Accounts of the run with their hosts: configured ids, or all/default discovered ones.

    An explicit `base_url` wins; otherwise OAuth credentials find each account's own host.
    """
    if account_ids and (base_url or not credentials.is_oauth):
        return [AccountTarget(i, None, base_url or settings.DEFAULT_BASE_URL) for i in account_ids]
    reachable = {a.account_id: a for a in discover(credentials, auth)}
    odd = [i for i in reachable if not _ACCOUNT_ID.match(i)]
    if odd:  # ids end up in SQL literals of the history scope: only GUIDs and numbers pass
        raise ResponseError(
            f"/oauth/userinfo listed an account id that is not a GUID or number: {odd[0]!r}"
        )
    if not account_ids:
        account_ids = [i for i, a in reachable.items() if accounts == "all" or a.is_default]
    targets = []
    for account_id in account_ids:
        info = reachable.get(account_id)
        host = base_url or (info.base_url if info else None)
        targets.append(AccountTarget(account_id, info.account_name if info else None, host))
    return targets
