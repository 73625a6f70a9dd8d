"""A local, DocuSign-compatible HTTP API for tests, benchmarks and demos.

Request pipeline, in order (each step may end the request):
  1. `latency` sleep (every request, even unknown paths)
  2. routing -> 404 for anything but GET .../accounts/{id}/ + one of `RESOURCES`
  3. authentication -> 401 (nothing below ever sees an unauthenticated request)
  4. account checks -> 400 USER_DOES_NOT_BELONG_TO_SPECIFIED_ACCOUNT / USER_LACKS_PERMISSIONS
  5. rate limiters (`limits.py`; only authenticated, authorised requests count toward a window):
     the host's (`rate_limit`) -> 429, the account's hourly and burst (`limit_accounts`) -> 400
  6. next queued fault (`inject`) matching the account (and resource)
  7. raw override (`set_response`) or the view of the account's ledger (`ledger.py`, `billing.py`)

The data is one ledger per account (`ledger.py`): the past-due body is exactly its invoices with a
balance whose due date is before `today`, and the other endpoints are views of the same invoices,
payments, plans and usage. `today` is the sandbox's clock (a date; `advance()` moves it).
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
import xml.etree.ElementTree as ElementTree
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import Message
from random import Random
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .billing import LOGGED_PARAMETERS, BadRequest, charges_body, list_page, plan_body
from .data import account_id_for, format_amount, generate_response, parse_amount
from .faults import THROTTLING, Fault, FaultQueue, fault_reply
from .ledger import AccountLedger
from .limits import AccountLimits, FixedWindow, HostLimit
from .oauth import OAuthAuthority
from .replies import Reply, error, json_reply, throttled
from .transport import Server

LEGACY_CREDENTIALS = {
    "username": "admin@sandbox.example",
    "password": "sandbox-password",
    "integrator_key": "sandbox-integrator-key",
}
ACCESS_TOKEN = "sandbox-access-token"

PAST_DUE = "billing_invoices_past_due"
RESOURCES = (PAST_DUE, "billing_invoices", "billing_payments", "billing_plan", "billing_charges")
_STOP_POLL_SECONDS = 0.05
_ROUTE = re.compile(rf"^/restapi/v2\.1/accounts/([^/]+)/({'|'.join(RESOURCES)})/?$")


def _legacy_fields(header: str) -> dict[str, str] | None:
    """Parse the JSON or XML X-DocuSign-Authentication header into lower-cased keys."""
    try:
        if header.lstrip().startswith("<"):
            root = ElementTree.fromstring(header)
            return {child.tag.lower(): (child.text or "") for child in root}
        fields = json.loads(header)
    except (ValueError, ElementTree.ParseError):
        return None
    if not isinstance(fields, dict):
        return None
    return {str(key).lower(): str(value) for key, value in fields.items()}


class Sandbox:
    """DocuSign eSignature look-alike serving the billing endpoints (`RESOURCES`) on 127.0.0.1.

    All state switches are thread-safe; `reset()` restores the constructor state (added accounts,
    payments, `today`, overrides, denials, faults, limiters, latency, counters and the log) but
    keeps tokens from `add_token`.

    Request log: `requests` holds one dict per request, in arrival order: `method`, `path` (without
    the query), `resource` (one of `RESOURCES` or None), `query` (the billing parameters of
    `billing.LOGGED_PARAMETERS` as sent, nothing else), `status` (None: connection dropped),
    `account_id`, `auth` ("token", "legacy" or None) and `at` (epoch seconds). Never header values.
    """

    def __init__(
        self,
        accounts: int = 3,
        invoices_per_account: int | tuple[int, int] = (2, 6),
        seed: int = 7,
        items_per_invoice: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        hosts: int = 1,
        token_lifetime: float = 3600.0,
        today: date | None = None,
        page_size: int = 1000,
        max_window_days: int = 365,
        leak_payment_details: bool = False,
    ) -> None:
        """Builds the accounts' ledgers; `start()` serves them.

        Args:
            hosts: > 1 spreads the accounts over that many ports, like DocuSign's naX hosts.
            today: the sandbox's clock (default: today in UTC); invoices due before it are settled.
            page_size: records per `billing_invoices` / `billing_payments` page (then `nextUri`).
            max_window_days: longest `from_date`..`to_date` window accepted (else HTTP 400).
            leak_payment_details: send card, bank and tax-exempt data in `billing_plan` even
                when the request asks for none (to prove the pipeline drops them).
        """
        self.initial_today = today or datetime.now(UTC).date()
        self.page_size, self.max_window_days = page_size, max_window_days
        self.leak_payment_details = leak_payment_details
        self.seed, self.items_per_invoice, self.host, self.port = (
            seed,
            items_per_invoice,
            host,
            port,
        )
        self.hosts = max(1, hosts)
        span = (
            (invoices_per_account,) * 2
            if isinstance(invoices_per_account, int)
            else invoices_per_account
        )
        rng = Random(f"sandbox:{seed}")
        self._initial_counts = [rng.randint(*span) for _ in range(accounts)]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.answering = threading.Event()
        """Cleared, every request waits (after its latency) until it is set again or the sandbox
        stops: a test holds a run inside its API calls for as long as it needs, with no clock."""
        self.answering.set()
        self._connections: set[socket.socket] = set()
        self._servers: list[Server] = []
        self._tokens: dict[str, float | None] = {
            ACCESS_TOKEN: None
        }  # token -> expiry (epoch) or None
        self.oauth = OAuthAuthority(
            issue=self.add_token,
            accounts=self._userinfo_accounts,
            audience=host,
            token_lifetime=token_lifetime,
        )
        self.reset()

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Bind and serve in a daemon thread; a no-op when already running."""
        if not self._servers:
            self._stopping.clear()
            for index in range(self.hosts):
                server = Server((self.host, self.port if index == 0 else 0), self, index)
                threading.Thread(
                    target=server.serve_forever,
                    # how long `stop()` waits per host (the default 0.5 s, ~1 min of the suite)
                    kwargs={"poll_interval": _STOP_POLL_SECONDS},
                    name="docusign-sandbox",
                    daemon=True,
                ).start()
                self._servers.append(server)
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging requests and cut kept-alive connections so clients see a dead server."""
        servers, self._servers = self._servers, []
        if not servers:
            return
        self._stopping.set()
        for server in servers:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Root that clients append `/v2.1/accounts/...` to, like DocuSign's `.../restapi` (first host)."""
        return f"{self._root(0)}/restapi"

    @property
    def oauth_base_url(self) -> str:
        """The account server (`/oauth/token`, `/oauth/userinfo`), like https://account-d.docusign.com."""
        return self._root(0)

    def base_url_for(self, account_id: str) -> str:
        """The REST base of the host that serves this account."""
        return f"{self._root(self._host_of(account_id))}/restapi"

    def _root(self, index: int) -> str:
        if not self._servers:
            raise RuntimeError("Sandbox is not running; call start() first")
        host, port = self._servers[index].server_address[:2]
        return f"http://{host!s}:{port}"  # an IPv4 server's host is a str

    def _host_of(self, account_id: str) -> int:
        with self._lock:
            return list(self._bodies).index(account_id) % self.hosts

    def _userinfo_accounts(self) -> list[dict[str, Any]]:
        return [
            {
                "account_id": account_id,
                "account_name": f"Sandbox Co {index + 1}",
                "is_default": index == 0,
                "base_uri": self._root(self._host_of(account_id)),
            }
            for index, account_id in enumerate(self.account_ids)
        ]

    # data --------------------------------------------------------------------------------------
    @property
    def account_ids(self) -> list[str]:
        with self._lock:
            return list(self._bodies)

    def response(self, account_id: str) -> dict[str, Any]:
        """Deep copy of the account's past-due body today (ignores any `set_response` override)."""
        with self._lock:
            return copy.deepcopy(self._past_due(account_id))

    def ledger(self, account_id: str) -> AccountLedger:
        """The account's history (read it under no other thread's changes: tests only)."""
        with self._lock:
            return self._ledgers[account_id]

    @property
    def today(self) -> date:
        with self._lock:
            return self._today

    @today.setter
    def today(self, day: date) -> None:
        with self._lock:
            self._today = day

    def advance(self, days: int = 1) -> date:
        """Move the clock on by `days`: new invoices are issued, payments arrive, balances change."""
        with self._lock:
            self._today += timedelta(days=days)
            return self._today

    def add_account(self, invoices: int = 3) -> str:
        """Append a deterministically generated account and return its id."""
        with self._lock:
            return self._add(len(self._bodies), invoices)

    def _add(self, index: int, invoices: int) -> str:
        account_id = account_id_for(self.seed, index)
        body = generate_response(self.seed, index, account_id, invoices, self.items_per_invoice)
        self._bodies[account_id] = body
        self._ledgers[account_id] = AccountLedger(
            self.seed, index, account_id, body, self.initial_today
        )
        return account_id

    def pay_invoice(self, account_id: str, invoice_id: str) -> None:
        """Pay the invoice's whole balance today: it leaves the past-due list, a payment appears."""
        with self._lock:
            ledger = self._ledgers[account_id]
            invoice = next(
                (i for i in ledger.past_due(self._today) if i.invoice_id == invoice_id), None
            )
            if invoice is None:
                raise KeyError(invoice_id)
            ledger.record_payment(invoice, invoice.balance(self._today), self._today)
            if invoice.collection:
                self._bodies[account_id]["billingInvoices"].remove(invoice.body)
                invoice.body["balance"] = "0.00"
                self._recompute(self._bodies[account_id])

    def set_balance(self, account_id: str, invoice_id: str, balance: str) -> None:
        """Change a past-due endpoint invoice's balance (any DocuSign amount format) and keep the
        totals consistent; a lower balance is a payment of the difference today."""
        new = parse_amount(balance)
        with self._lock:
            body, ledger = self._bodies[account_id], self._ledgers[account_id]
            invoice = ledger.collection(invoice_id)
            if invoice.body not in body["billingInvoices"]:
                raise KeyError(invoice_id)
            if new < invoice.balance(self._today):
                ledger.record_payment(invoice, invoice.balance(self._today) - new, self._today)
            invoice.body["balance"] = balance
            self._recompute(body)

    def set_invoice_items(self, account_id: str, invoice_id: str, keep: int) -> None:
        """Correct an issued invoice to its first `keep` line items (0: none, an empty list), as
        DocuSign re-issues one; its totals stay. Every endpoint serves the new lines from now on."""
        with self._lock:
            invoices = self._ledgers[account_id].all_invoices(self._today)
            invoice = next((i for i in invoices if i.invoice_id == invoice_id), None)
            if invoice is None:
                raise KeyError(invoice_id)
            invoice.body["invoiceItems"] = invoice.body["invoiceItems"][:keep]

    def set_response(
        self,
        account_id: str,
        body: object,
        status: int = 200,
        content_type: str | None = "application/json",
        resource: str = PAST_DUE,
    ) -> None:
        """Serve `body` verbatim for this account's `resource`: dict/list are JSON-encoded,
        str/bytes sent as-is."""
        if isinstance(body, (dict, list)):
            raw = json.dumps(body).encode()
        elif isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        else:
            raise TypeError(f"unsupported body type {type(body).__name__}")
        if resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}; expected one of {RESOURCES}")
        with self._lock:
            if account_id not in self._bodies:
                raise KeyError(account_id)
            self._overrides[(account_id, resource)] = (status, raw, content_type)

    def deny_admin(self, account_id: str) -> None:
        """Make the account answer 400 USER_LACKS_PERMISSIONS, as for a non-admin user."""
        with self._lock:
            self._denied.add(account_id)

    def add_token(self, token: str, lifetime: float | None = None) -> None:
        """Accept another bearer token (e.g. one issued by the OAuth flow), for `lifetime` seconds."""
        with self._lock:
            self._tokens[token] = None if lifetime is None else time.time() + lifetime

    def reset(self) -> None:
        with self._lock:
            self._bodies: dict[str, dict[str, Any]] = {}
            self._ledgers: dict[str, AccountLedger] = {}
            self._today = self.initial_today
            for index, invoices in enumerate(self._initial_counts):
                self._add(index, invoices)
            self._overrides: dict[tuple[str, str], tuple[int, bytes, str | None]] = {}
            self._denied: set[str] = set()
            self._faults = FaultQueue()
            self._host_limit: HostLimit | None = None
            self._account_limits: AccountLimits | None = None
            self.latency = 0.0
            self.throttled = 0
            self.max_in_flight = 0
            self._in_flight = 0
            self.requests: list[dict[str, Any]] = []

    def _past_due(self, account_id: str) -> dict[str, Any]:
        """The past-due body today (caller holds the lock): the collections body itself while its
        invoices are exactly the ledger's past-due ones, else a body re-totalled around them."""
        body, overdue = self._bodies[account_id], self._ledgers[account_id].past_due(self._today)
        listed = body["billingInvoices"]
        if len(overdue) == len(listed) and all(i.body is b for i, b in zip(overdue, listed)):
            return body
        derived = {
            **body,
            "billingInvoices": [
                i.body
                if i.collection
                else {**i.body, "balance": format_amount(i.balance(self._today))}
                for i in overdue
            ],
        }
        self._recompute(derived)
        return derived

    # faults ------------------------------------------------------------------------------------
    def inject(
        self,
        fault: str,
        times: int = 1,
        account_id: str | None = None,
        resource: str | None = None,
        **options: Any,
    ) -> None:
        """Queue `fault` for the next `times` requests (for `account_id` and `resource`, or any).

        Options: 429 and hourly -> ratelimit_reset (seconds from now; X-RateLimit-* headers), 429
        -> retry_after (int seconds); a missing option omits its headers. hourly / burst answer
        HTTP 400 with DocuSign's throttling errorCode. hang -> seconds (default 30, cut short by
        stop()). latency -> seconds. malformed answers HTTP 200 with JSON cut off mid-way. Any
        fault -> next_page=True: only requests of a `nextUri` page (with `start_position`) match.
        """
        with self._lock:
            self._faults.add(Fault(fault, times, account_id, resource, options))

    def rate_limit(self, max_requests: int, per_seconds: float) -> None:
        """One fixed window for the whole host, answered with 429 + `Retry-After`: windows are
        aligned to the clock and `X-RateLimit-Reset` is when the next one starts with the full
        budget. Once set, every authorised response carries X-RateLimit-* headers."""
        with self._lock:
            self._host_limit = HostLimit(FixedWindow(max_requests, per_seconds))

    def limit_accounts(
        self,
        hourly: int = 3000,
        burst: int = 200,
        hour_seconds: float = 3600.0,
        burst_seconds: float = 30.0,
    ) -> None:
        """DocuSign's limits per account: `hourly` requests per clock-aligned window of
        `hour_seconds` (`X-RateLimit-Limit/-Remaining/-Reset`) and `burst` per `burst_seconds`
        (`X-BurstLimit-Limit/-Remaining`), headers on every authorised answer; a spent window
        answers HTTP 400 `HOURLY_APIINVOCATION_LIMIT_EXCEEDED` / `BURST_APIINVOCATION_LIMIT_EXCEEDED`.
        The defaults are DocuSign's developer environment's; shorter windows make tests fast."""
        with self._lock:
            self._account_limits = AccountLimits(
                FixedWindow(hourly, hour_seconds), FixedWindow(burst, burst_seconds)
            )

    # request handling --------------------------------------------------------------------------
    def _track(self, connection: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)

    def _serve(
        self, method: str, raw_path: str, headers: Message, body: bytes = b"", host: int = 0
    ) -> Reply:
        """Run the pipeline in the module docstring and log the request as a server receives it
        (target with its query, headers, body), so tests can check what a client sent where."""
        parts = urlsplit(raw_path)
        path = parts.path
        query = {k: v for k, v in parse_qsl(parts.query) if k in LOGGED_PARAMETERS}
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "resource": None,
            "query": query,
            "target": raw_path,
            "headers": dict(headers.items()),
            "body": body.decode("utf-8", "replace"),
            "status": None,
            "account_id": None,
            "auth": None,
            "at": time.time(),
        }
        with self._lock:
            self.requests.append(entry)
            latency = self.latency
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return self._reply(entry, method, path, headers, body, host, latency)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _reply(
        self,
        entry: dict[str, Any],
        method: str,
        path: str,
        headers: Message,
        body: bytes,
        host: int,
        latency: float,
    ) -> Reply:
        if latency:
            self._stopping.wait(latency)
        while not self.answering.wait(0.05) and not self._stopping.is_set():
            pass  # held by the test (see `answering`)
        match = _ROUTE.match(path)
        oauth = None
        if path.startswith("/oauth/"):  # the account server; API requests authenticate below
            oauth = self.oauth.handle(
                method, path, headers, body, self._authenticate(headers)[0] == "token"
            )
        if oauth is not None:
            reply = json_reply(*oauth)
        elif method != "GET" or match is None:
            reply = error("404")
        elif (
            self.hosts > 1
            and match.group(1) in self.account_ids
            and self._host_of(match.group(1)) != host
        ):
            entry["account_id"] = match.group(1)
            reply = error("account")  # the account lives on another host
        else:
            entry["account_id"], entry["resource"] = match.group(1), match.group(2)
            reply = self._authorised(entry, headers)
        entry["status"] = reply[0]
        return reply

    def _authorised(self, entry: dict[str, Any], headers: Message) -> Reply:
        auth, failure = self._authenticate(headers)
        if failure:
            return error(failure)
        entry["auth"] = auth
        account_id, resource = entry["account_id"], entry["resource"]
        with self._lock:
            if account_id not in self._bodies:
                return error("account")
            if account_id in self._denied:
                return error("admin")
            refused, limit_headers = self._admit(account_id)
            if refused is not None:
                self.throttled += 1
                return refused
            fault = self._faults.take(account_id, resource, entry["query"])
            if fault is not None and fault.kind in THROTTLING:
                self.throttled += 1
        if fault is not None:
            reply = fault_reply(fault, limit_headers, self._stopping)
            if reply is not None:
                return reply
        with self._lock:
            if (account_id, resource) in self._overrides:
                status, raw, content_type = self._overrides[(account_id, resource)]
                return status, raw, content_type, limit_headers
            try:
                return json_reply(
                    200, self._view(account_id, resource, entry["query"]), limit_headers
                )
            except BadRequest as ex:
                body = {"errorCode": "INVALID_REQUEST_PARAMETER", "message": str(ex)}
                return json_reply(400, body, limit_headers)

    def _view(self, account_id: str, resource: str, query: dict[str, str]) -> dict[str, Any]:
        """The resource's body today from the account's ledger (caller holds the lock)."""
        ledger, today = self._ledgers[account_id], self._today
        if resource == PAST_DUE:
            return self._past_due(account_id)
        if resource == "billing_plan":
            return plan_body(ledger, query, today, self.leak_payment_details)
        if resource == "billing_charges":
            return charges_body(ledger, query, today)
        return list_page(resource, ledger, query, today, self.max_window_days, self.page_size)

    def _authenticate(self, headers: Message) -> tuple[str | None, str | None]:
        """Return (auth kind, error kind); bearer tokens win when both headers are sent."""
        authorization = headers.get("Authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            with self._lock:
                expires = self._tokens.get(token.strip(), 0.0)
                valid = scheme.lower() == "bearer" and (expires is None or expires > time.time())
            return ("token", None) if valid else (None, "token")
        legacy = headers.get("X-DocuSign-Authentication")
        if legacy is None:
            return None, "missing"
        fields = _legacy_fields(legacy)
        if fields is None:
            return None, "user"
        if fields.get("integratorkey") != LEGACY_CREDENTIALS["integrator_key"]:
            return None, "partner"
        if (fields.get("username"), fields.get("password")) != (
            LEGACY_CREDENTIALS["username"],
            LEGACY_CREDENTIALS["password"],
        ):
            return None, "user"
        return "legacy", None

    def _admit(self, account_id: str) -> tuple[Reply | None, dict[str, str]]:
        """Both limiters (caller holds the lock): (the throttling reply or None, limit headers)."""
        headers: dict[str, str] = {}
        for limiter in (self._account_limits, self._host_limit):
            if limiter is None:
                continue
            if isinstance(limiter, HostLimit):
                admission = limiter.admit()
                headers.update(admission.headers)
                if admission.throttled:
                    return error("429", headers), headers
            else:
                admission = limiter.admit(account_id)
                headers.update(admission.headers)
                if admission.throttled:
                    return throttled(admission.throttled, headers), headers
        return None, headers

    @staticmethod
    def _recompute(body: dict[str, Any]) -> None:
        """Re-total pastDueBalance; accountBalance moves by the same delta so it stays >= past due."""
        past_due = sum(
            (parse_amount(invoice["balance"]) for invoice in body["billingInvoices"]), Decimal(0)
        )
        delta = past_due - parse_amount(body["pastDueBalance"])
        body["pastDueBalance"] = format_amount(past_due)
        body["accountBalance"] = format_amount(parse_amount(body["accountBalance"]) + delta)
