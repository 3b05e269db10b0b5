"""Real receivers on loopback for the delivery tests: an SMTP server (aiosmtpd) and an HTTP
webhook receiver (http.server in a thread) that checks the signature with `delivery.verify`."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from crm_core import delivery


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Inbox:
    """What the SMTP server received: envelopes and parsed messages."""

    port: int
    envelopes: list = field(default_factory=list)

    @property
    def messages(self) -> list[EmailMessage]:
        """Every received e-mail, parsed."""
        return [
            email.message_from_bytes(e.content, policy=email.policy.default) for e in self.envelopes
        ]


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        self.inbox.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(login: tuple[str, str] | None = None) -> Iterator[Inbox]:
    """An SMTP server on 127.0.0.1 (with AUTH LOGIN/PLAIN when `login` is given)."""
    inbox = Inbox(port=free_port())
    options: dict = {}
    if login:

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and (
                    auth_data.login.decode(),
                    auth_data.password.decode(),
                )
                == login
            )
            return AuthResult(success=ok, handled=False)

        options = {"authenticator": authenticator, "auth_require_tls": False}
    controller = Controller(_Handler(inbox), hostname="127.0.0.1", port=inbox.port, **options)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@dataclass
class Hooks:
    """What the webhook receiver got, and the status codes it answers with in turn."""

    secret: str
    answers: list[int]
    url: str = ""
    requests: list[dict] = field(default_factory=list)


@contextmanager
def webhook_receiver(secret: str, answers: list[int] | None = None) -> Iterator[Hooks]:
    """An HTTP receiver on 127.0.0.1 that answers 401 to a bad signature, else the next of
    `answers` (200 once they run out)."""
    hooks = Hooks(secret=secret, answers=list(answers or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            timestamp = self.headers.get(delivery.TIMESTAMP_HEADER, "")
            signature = self.headers.get(delivery.SIGNATURE_HEADER, "")
            valid = delivery.verify(hooks.secret, body, timestamp, signature)
            hooks.requests.append({"body": body, "valid": valid, "headers": self.headers})
            status = (hooks.answers.pop(0) if hooks.answers else 200) if valid else 401
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"bad signature" if not valid else b"no")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hooks.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        server.shutdown()
        server.server_close()
