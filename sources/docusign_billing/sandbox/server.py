"""A local, DocuSign-compatible HTTP API for tests, benchmarks and demos.

Request pipeline, in order (each step may end the request):
  1. `latency` sleep (every request, even unknown paths)
  2. routing -> 404 for anything but GET .../billing_invoices_past_due
  3. authentication -> 401 (nothing below ever sees an unauthenticated request)
  4. account checks -> 400 USER_DOES_NOT_BELONG_TO_SPECIFIED_ACCOUNT / USER_LACKS_PERMISSIONS
  5. rate limiter -> 429 (only authenticated, authorised requests count toward the window)
  6. next queued fault (`inject`) matching the account
  7. raw override (`set_response`) or the account's current body
"""

from __future__ import annotations

import copy
import json
import math
import re
import socket
import struct
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from decimal import Decimal
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from random import Random
from typing import Any
from urllib.parse import urlsplit

from .data import account_id_for, format_amount, generate_response, parse_amount
from .oauth import OAuthAuthority

LEGACY_CREDENTIALS = {
    "username": "admin@sandbox.example",
    "password": "sandbox-password",
    "integrator_key": "sandbox-integrator-key",
}
ACCESS_TOKEN = "sandbox-access-token"

FAULTS = frozenset({"401", "429", "500", "502", "503", "504", "reset", "hang", "latency"})
_ROUTE = re.compile(r"^/restapi/v2\.1/accounts/([^/]+)/billing_invoices_past_due/?$")
_DEFAULT_HOURLY_LIMIT = 1000
_ERRORS = {
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
    "500": (500, "UNSPECIFIED_ERROR", "An unexpected error occurred while processing the request."),
    "502": (502, "BAD_GATEWAY", "The upstream server returned an invalid response."),
    "503": (
        503,
        "SERVICE_UNAVAILABLE",
        "The service is temporarily unavailable. Please retry later.",
    ),
    "504": (504, "GATEWAY_TIMEOUT", "The upstream server did not respond in time."),
}
_GATEWAY_HTML = (
    "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center></body></html>\r\n"
)
_GATEWAY_TITLES = {"502": "502 Bad Gateway", "504": "504 Gateway Time-out"}

Reply = tuple[int | None, bytes, str, dict[str, str]]
"""(status, body, content type, extra headers); status None means "drop the connection"."""
_DROP: Reply = (None, b"", "", {})


def _json_reply(status: int, body: object, headers: dict[str, str] | None = None) -> Reply:
    return status, json.dumps(body).encode(), "application/json; charset=utf-8", headers or {}


def _error(kind: str, headers: dict[str, str] | None = None) -> Reply:
    status, code, message = _ERRORS[kind]
    return _json_reply(status, {"errorCode": code, "message": message}, headers)


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    """Listen backlog. socketserver's default of 5 overflows when a run opens its 16 connections at
    once while this process is busy; Linux then drops the SYN and the client retries it only after
    its 1 s initial retransmission timeout (the growth benchmark's intermittent +0.8 s runs)."""

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, index: int) -> None:
        self.sandbox, self.index = sandbox, index
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are expected (timeouts, `reset`, `stop`); stay quiet."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small writes would otherwise wait ~40 ms for a delayed ACK
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.sandbox._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.sandbox._track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default logger would echo request lines to stderr."""

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request_body = self.rfile.read(length) if length else b""
        status, body, content_type, headers = self.server.sandbox._serve(
            self.command, self.path, self.headers, request_body, self.server.index
        )
        if status is None:
            # SO_LINGER 0 turns the close into a TCP RST, like a proxy aborting the connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class Sandbox:
    """DocuSign eSignature look-alike serving `billing_invoices_past_due` on 127.0.0.1.

    All state switches are thread-safe; `reset()` restores the constructor state (added accounts,
    overrides, denials, faults, limiter, latency, counters and the log) but keeps tokens from `add_token`.
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
    ) -> None:
        """`hosts` > 1 spreads the accounts over that many ports, like DocuSign's naX hosts."""
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
        self._connections: set[socket.socket] = set()
        self._servers: list[_Server] = []
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
                server = _Server((self.host, self.port if index == 0 else 0), self, index)
                threading.Thread(
                    target=server.serve_forever, name="docusign-sandbox", daemon=True
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
        """Deep copy of the account's current body (ignores any `set_response` override)."""
        with self._lock:
            return copy.deepcopy(self._bodies[account_id])

    def add_account(self, invoices: int = 3) -> str:
        """Append a deterministically generated account and return its id."""
        with self._lock:
            index = len(self._bodies)
            account_id = account_id_for(self.seed, index)
            self._bodies[account_id] = generate_response(
                self.seed, index, account_id, invoices, self.items_per_invoice
            )
        return account_id

    def pay_invoice(self, account_id: str, invoice_id: str) -> None:
        """Drop the invoice from the past-due list, as DocuSign does once it is paid."""
        with self._lock:
            body = self._bodies[account_id]
            invoice = self._find_invoice(body, invoice_id)
            body["billingInvoices"].remove(invoice)
            self._recompute(body)

    def set_balance(self, account_id: str, invoice_id: str, balance: str) -> None:
        """Change an invoice balance (any DocuSign amount format) and keep the totals consistent."""
        parse_amount(balance)
        with self._lock:
            body = self._bodies[account_id]
            self._find_invoice(body, invoice_id)["balance"] = balance
            self._recompute(body)

    def set_response(
        self,
        account_id: str,
        body: object,
        status: int = 200,
        content_type: str = "application/json",
    ) -> None:
        """Serve `body` verbatim for this account: dict/list are JSON-encoded, str/bytes sent as-is."""
        if isinstance(body, (dict, list)):
            raw = json.dumps(body).encode()
        elif isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        else:
            raise TypeError(f"unsupported body type {type(body).__name__}")
        with self._lock:
            if account_id not in self._bodies:
                raise KeyError(account_id)
            self._overrides[account_id] = (status, raw, content_type)

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
            for index, invoices in enumerate(self._initial_counts):
                account_id = account_id_for(self.seed, index)
                self._bodies[account_id] = generate_response(
                    self.seed, index, account_id, invoices, self.items_per_invoice
                )
            self._overrides: dict[str, tuple[int, bytes, str]] = {}
            self._denied: set[str] = set()
            self._faults: list[dict[str, Any]] = []
            self._limit: tuple[int, float] | None = None
            self._window = (0, 0)  # (window number, requests admitted in it)
            self.latency = 0.0
            self.throttled = 0
            self.max_in_flight = 0
            self._in_flight = 0
            self.requests: list[dict[str, Any]] = []

    # faults ------------------------------------------------------------------------------------
    def inject(
        self, fault: str, times: int = 1, account_id: str | None = None, **options: Any
    ) -> None:
        """Queue `fault` for the next `times` requests (for `account_id`, or any account if None).

        Options: 429 -> retry_after (int seconds), ratelimit_reset (seconds from now); a missing option
        omits its headers. hang -> seconds (default 30, cut short by stop()). latency -> seconds.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULTS)}")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(
                {"fault": fault, "left": times, "account_id": account_id, "options": options}
            )

    def rate_limit(self, max_requests: int, per_seconds: float) -> None:
        """Fixed windows aligned to the clock, like DocuSign's hourly windows: `X-RateLimit-Reset`
        is when the next window starts with the full budget. Once set, every authorised response
        carries X-RateLimit-* headers."""
        with self._lock:
            self._limit = (max_requests, per_seconds)
            self._window = (0, 0)

    # request handling --------------------------------------------------------------------------
    def _track(self, connection: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)

    def _serve(
        self, method: str, raw_path: str, headers: Message, body: bytes = b"", host: int = 0
    ) -> Reply:
        """Run the pipeline in the module docstring and log the outcome (never header values)."""
        path = urlsplit(raw_path).path
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
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
        match = _ROUTE.match(path)
        oauth = None
        if path.startswith("/oauth/"):  # the account server; API requests authenticate below
            oauth = self.oauth.handle(
                method, path, headers, body, self._authenticate(headers)[0] == "token"
            )
        if oauth is not None:
            reply = _json_reply(*oauth)
        elif method != "GET" or match is None:
            reply = _error("404")
        elif (
            self.hosts > 1
            and match.group(1) in self.account_ids
            and self._host_of(match.group(1)) != host
        ):
            entry["account_id"] = match.group(1)
            reply = _error("account")  # the account lives on another host
        else:
            entry["account_id"] = match.group(1)
            reply = self._authorised(entry, headers)
        entry["status"] = reply[0]
        if reply[0] == 429:
            with self._lock:
                self.throttled += 1
        return reply

    def _authorised(self, entry: dict[str, Any], headers: Message) -> Reply:
        auth, failure = self._authenticate(headers)
        if failure:
            return _error(failure)
        entry["auth"] = auth
        account_id = entry["account_id"]
        with self._lock:
            if account_id not in self._bodies:
                return _error("account")
            if account_id in self._denied:
                return _error("admin")
            limited, limit_headers = self._admit()
            if limited:
                return _error("429", limit_headers)
            fault = self._next_fault(account_id)
        if fault is not None:
            reply = self._apply_fault(fault, limit_headers)
            if reply is not None:
                return reply
        with self._lock:
            if account_id in self._overrides:
                status, raw, content_type = self._overrides[account_id]
                return status, raw, content_type, limit_headers
            return _json_reply(200, self._bodies[account_id], limit_headers)

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

    def _admit(self) -> tuple[bool, dict[str, str]]:
        """Fixed-window check (caller holds the lock); returns (throttled, headers)."""
        if self._limit is None:
            return False, {}
        max_requests, per_seconds = self._limit
        now = time.time()
        window = math.floor(now / per_seconds)
        used = self._window[1] if self._window[0] == window else 0
        throttled = used >= max_requests
        if not throttled:
            used += 1
        self._window = (window, used)
        resets_at = (window + 1) * per_seconds
        headers = {
            "X-RateLimit-Limit": str(max_requests),
            "X-RateLimit-Remaining": str(max_requests - used),
            "X-RateLimit-Reset": str(math.ceil(resets_at)),
        }
        if throttled:
            headers["Retry-After"] = str(max(1, math.ceil(resets_at - now)))
        return throttled, headers

    def _next_fault(self, account_id: str) -> dict[str, Any] | None:
        """Pop one use of the oldest fault matching this account (caller holds the lock)."""
        for fault in self._faults:
            if fault["account_id"] in (None, account_id):
                fault["left"] -= 1
                if fault["left"] == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _apply_fault(self, fault: dict[str, Any], limit_headers: dict[str, str]) -> Reply | None:
        """Build the fault's reply, or sleep and return None so the request is answered normally."""
        kind, options = fault["fault"], fault["options"]
        if kind == "reset":
            return _DROP
        if kind in ("hang", "latency"):
            stopped = self._stopping.wait(options.get("seconds", 30 if kind == "hang" else 1))
            return _DROP if stopped else None
        if kind == "401":  # a token revoked or expired early
            return _error("token")
        if kind in _GATEWAY_TITLES:
            return (
                int(kind),
                _GATEWAY_HTML.format(_GATEWAY_TITLES[kind]).encode(),
                "text/html",
                limit_headers,
            )
        headers = dict(limit_headers)
        if kind == "429":
            if options.get("retry_after") is not None:
                headers["Retry-After"] = str(options["retry_after"])
            if options.get("ratelimit_reset") is not None:
                headers["X-RateLimit-Limit"] = str(
                    self._limit[0] if self._limit else _DEFAULT_HOURLY_LIMIT
                )
                headers["X-RateLimit-Remaining"] = "0"
                headers["X-RateLimit-Reset"] = str(
                    math.ceil(time.time() + options["ratelimit_reset"])
                )
        return _error(kind, headers)

    @staticmethod
    def _find_invoice(body: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        for invoice in body["billingInvoices"]:
            if invoice["invoiceId"] == invoice_id:
                return invoice
        raise KeyError(invoice_id)

    @staticmethod
    def _recompute(body: dict[str, Any]) -> None:
        """Re-total pastDueBalance; accountBalance moves by the same delta so it stays >= past due."""
        past_due = sum(
            (parse_amount(invoice["balance"]) for invoice in body["billingInvoices"]), Decimal(0)
        )
        delta = past_due - parse_amount(body["pastDueBalance"])
        body["pastDueBalance"] = format_amount(past_due)
        body["accountBalance"] = format_amount(parse_amount(body["accountBalance"]) + delta)
