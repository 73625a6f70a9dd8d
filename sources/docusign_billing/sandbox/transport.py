"""The sandbox's HTTP plumbing: a threading server per host and its request handler."""

from __future__ import annotations

import socket
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Sandbox


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    """Listen backlog. socketserver's default of 5 overflows when a run opens its 16 connections at
    once while this process is busy; Linux then drops the SYN and the client retries it only after
    its 1 s initial retransmission timeout (the growth benchmark's intermittent +0.8 s runs)."""

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, index: int) -> None:
        self.sandbox, self.index = sandbox, index
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are expected (timeouts, `reset`, `stop`); stay quiet."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small writes would otherwise wait ~40 ms for a delayed ACK
    server: Server

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
        if content_type is not None:  # None: an answer without the header
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch
