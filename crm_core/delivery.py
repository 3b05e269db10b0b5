"""Deliveries of alerts, reports and exports: e-mail over SMTP, a signed webhook, a folder.

A destination is a small JSON object (a schedule keeps a list of them):

- ``{"kind": "email", "to": ["ops@example.com", ...]}``: sent over ``CRM_SMTP_URL``
  (``smtp://user:pass@host:587?starttls=true``; ``smtps://`` for implicit TLS) from
  ``CRM_MAIL_FROM``, as text plus HTML with inline images and the attachments;
- ``{"kind": "webhook", "url": "https://...", "secret": "<hex>"}``: an HTTPS POST of a JSON
  body, signed with HMAC-SHA256 of the destination's secret (plain http only to this machine);
  receivers check it with `verify`;
- ``{"kind": "folder", "path": "/absolute/folder"}``: the attachments and a manifest, each
  written whole (temporary file, then rename).

`deliver` tries each destination up to `retries` times with a growing pause, writes one
`deliveries` row per destination (attempts, status, last error) and never raises for a
destination that failed: the run goes on and the failure is visible in the run log.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import smtplib
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa

from crm_core.config import Settings, get_settings
from crm_core.errors import DeliveryError
from crm_core.schema import DELIVERY_KINDS, deliveries
from crm_core.store import Store, lock_tables, next_id, utcnow

MESSAGE_KINDS = ("alert", "report", "export", "test")
SMTP_TIMEOUT_SECONDS = 30.0
WEBHOOK_TIMEOUT_SECONDS = 15.0
SIGNATURE_HEADER = "X-CRM-Signature"
TIMESTAMP_HEADER = "X-CRM-Timestamp"
SECRET_MIN_LENGTH = 16
REDACTED = "********"

_FIELDS = {
    "email": {"kind", "to"},
    "webhook": {"kind", "url", "secret"},
    "folder": {"kind", "path"},
}
_EMAIL = re.compile(r"^[^@\s,;<>\"']+@[^@\s,;<>\"']+\.[A-Za-z0-9-]{2,}$")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message (or an inline image, referenced as cid:<name> in html)."""

    name: str
    data: bytes
    mime: str = "application/octet-stream"

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the data (listed in webhook bodies and folder manifests)."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Message:
    """What is delivered: the e-mail's subject, text and HTML, files, and the webhook's JSON."""

    subject: str
    text: str
    html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    images: list[Attachment] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)
    kind: str = "report"


@dataclass(frozen=True)
class DeliveryResult:
    """How one destination's delivery ended (as written to the `deliveries` table)."""

    delivery_id: int
    kind: str
    target: str
    status: str
    attempts: int
    error: str | None
    sent_at: datetime | None

    @property
    def ok(self) -> bool:
        """True when the destination received the message."""
        return self.status == "sent"


class _Permanent(DeliveryError):
    """A failure that another attempt cannot fix (a missing setting): no retry."""


# --- destinations ------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh random webhook secret (64 hex characters)."""
    return secrets.token_hex(32)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bad(position: int, kind: str, what: str, got: object, allowed: str, fix: str) -> DeliveryError:
    return DeliveryError(
        f"Destination {position} ({kind}): {what}; got {got!r}. Allowed: {allowed}. {fix}"
    )


def _validate_one(position: int, item: object) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise DeliveryError(
            f"Destination {position} is not an object; got {item!r}. Allowed: "
            '{"kind": "email", "to": [...]}, {"kind": "webhook", "url": ..., "secret": ...} or '
            '{"kind": "folder", "path": ...}. Write it as one of those.'
        )
    kind = item.get("kind")
    if kind not in DELIVERY_KINDS:
        raise DeliveryError(
            f"Destination {position}: unknown kind {kind!r}. Allowed: "
            f"{', '.join(DELIVERY_KINDS)}. Set 'kind' to one of them."
        )
    unknown = sorted(set(item) - _FIELDS[kind])
    if unknown:
        raise _bad(
            position,
            kind,
            f"unknown field(s) {', '.join(unknown)}",
            dict(item),
            ", ".join(sorted(_FIELDS[kind])),
            "Remove or rename them.",
        )
    if kind == "email":
        to = item.get("to")
        addresses = [to] if isinstance(to, str) else to
        if not isinstance(addresses, list | tuple) or not addresses:
            raise _bad(
                position,
                kind,
                "'to' needs at least one address",
                to,
                'a list such as ["ops@example.com"]',
                "Add the recipients.",
            )
        clean: list[str] = []
        for address in addresses:
            text = str(address).strip() if isinstance(address, str) else address
            if not isinstance(text, str) or not _EMAIL.match(text):
                raise _bad(
                    position,
                    kind,
                    "not an e-mail address",
                    address,
                    "name@domain.tld",
                    "Correct the address.",
                )
            if text.lower() not in (a.lower() for a in clean):
                clean.append(text)
        return {"kind": kind, "to": clean}
    if kind == "webhook":
        url = item.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        host = parts.hostname if parts else None
        if parts is None or parts.scheme not in ("https", "http") or not host:
            raise _bad(
                position,
                kind,
                "not a web address",
                url,
                "https://host/path",
                "Give the receiver's full https:// URL.",
            )
        if parts.scheme == "http" and not _is_loopback(host):
            raise _bad(
                position,
                kind,
                "plain http would send the signed payload unencrypted",
                url,
                "https:// (http:// only to localhost or 127.0.0.1)",
                "Use the receiver's https:// address.",
            )
        secret = item.get("secret")
        if not isinstance(secret, str) or len(secret.strip()) < SECRET_MIN_LENGTH:
            raise _bad(
                position,
                kind,
                f"the signing secret must be text of at least {SECRET_MIN_LENGTH} characters",
                REDACTED if secret else secret,
                "a random string such as delivery.new_secret() makes",
                "Generate one and give it to the receiver too.",
            )
        return {"kind": kind, "url": url.strip(), "secret": secret.strip()}
    path = item.get("path")
    if not isinstance(path, str) or not path.strip() or not Path(path.strip()).is_absolute():
        raise _bad(
            position,
            kind,
            "the folder must be an absolute path",
            path,
            "a path from the root, such as /srv/crm/outbox",
            "Write the full path (it is created if missing).",
        )
    return {"kind": kind, "path": str(Path(path.strip()))}


def validate_destinations(value: object) -> list[dict[str, Any]]:
    """Destinations checked and normalised (a list, or its JSON text); DeliveryError if not."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DeliveryError(
                f"Destinations are not valid JSON ({exc}); got {value[:80]!r}. Allowed: a JSON "
                "list of destinations. Fix the text."
            ) from exc
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise DeliveryError(
            f"Destinations must be a non-empty list; got {value!r}. Allowed: e-mail, webhook "
            "and folder destinations. Add at least one."
        )
    return [_validate_one(i, item) for i, item in enumerate(value, start=1)]


def redact(destinations: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Destinations with each webhook secret hidden (for listings, logs and pages)."""
    return [{k: (REDACTED if k == "secret" else v) for k, v in d.items()} for d in destinations]


def target(destination: Mapping[str, Any]) -> str:
    """Where a destination delivers, in one line: the addresses, the URL or the folder."""
    if destination["kind"] == "email":
        return ", ".join(destination["to"])
    if destination["kind"] == "webhook":
        return str(destination["url"])
    return str(destination["path"])


def describe(destination: Mapping[str, Any]) -> str:
    """A destination in words ("e-mail to ops@example.com")."""
    words = {"email": "e-mail to", "webhook": "webhook", "folder": "folder"}
    return f"{words[destination['kind']]} {target(destination)}"


# --- signatures ---------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: str) -> str:
    """The X-CRM-Signature header: "sha256=" + HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_seconds: float | None = None,
    now: float | None = None,
) -> bool:
    """True when `signature` is `sign(secret, body, timestamp)` (and, with a tolerance, the
    timestamp is that recent: a replayed old request fails)."""
    if not signature or not timestamp:
        return False
    if tolerance_seconds is not None:
        try:
            age = (time.time() if now is None else now) - float(timestamp)
        except ValueError:
            return False
        if abs(age) > tolerance_seconds:
            return False
    return hmac.compare_digest(sign(secret, body, timestamp), signature)


# --- the three senders --------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpServer:
    """CRM_SMTP_URL taken apart."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None
    timeout: float = SMTP_TIMEOUT_SECONDS


def parse_smtp_url(url: str) -> SmtpServer:
    """smtp://user:pass@host:port?starttls=true (or smtps://) as an SmtpServer."""
    if not url:
        raise _Permanent(
            "E-mail is off: CRM_SMTP_URL is not set; got ''. Allowed: "
            "smtp://user:pass@host:587?starttls=true or smtps://user:pass@host:465. "
            "Set CRM_SMTP_URL (and CRM_MAIL_FROM) where the app or scheduler runs."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise _Permanent(
            f"CRM_SMTP_URL is not a mail server URL; got {_hide_password(url)!r}. Allowed: "
            "smtp://user:pass@host:port?starttls=true or smtps://user:pass@host:port. Fix it."
        )
    query = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
    implicit = parts.scheme == "smtps"
    starttls = query.get("starttls", "false") in ("1", "true", "yes", "on")
    try:
        port = parts.port or (465 if implicit else 587 if starttls else 25)
        timeout = float(query.get("timeout", SMTP_TIMEOUT_SECONDS))
    except ValueError as exc:
        raise _Permanent(
            f"CRM_SMTP_URL has a bad port or timeout ({exc}); got {_hide_password(url)!r}. "
            "Allowed: a port number and a timeout in seconds. Fix it."
        ) from exc
    return SmtpServer(
        host=parts.hostname,
        port=port,
        implicit_tls=implicit,
        starttls=starttls and not implicit,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
    )


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@", 1)
    return url


def _split_mime(mime: str) -> tuple[str, str]:
    main, _, sub = mime.partition("/")
    return (main, sub) if main and sub else ("application", "octet-stream")


def build_email(message: Message, sender: str, to: Sequence[str]) -> EmailMessage:
    """The MIME e-mail: text and HTML alternatives, inline images (cid:<name>), attachments."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    mail.set_content(message.text or message.subject)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
        html_part = mail.get_payload()[-1]
        for image in message.images:
            main, sub = _split_mime(image.mime)
            html_part.add_related(
                image.data,
                maintype=main,
                subtype=sub,
                cid=f"<{image.name}>",
                filename=image.name,
                disposition="inline",
            )
    for attachment in message.attachments:
        main, sub = _split_mime(attachment.mime)
        mail.add_attachment(attachment.data, maintype=main, subtype=sub, filename=attachment.name)
    return mail


def _send_email(message: Message, destination: Mapping[str, Any], settings: Settings) -> None:
    server = parse_smtp_url(settings.smtp_url)
    if not settings.mail_from or not _EMAIL.match(settings.mail_from.strip()):
        raise _Permanent(
            f"CRM_MAIL_FROM is not a sender address; got {settings.mail_from!r}. Allowed: "
            "name@domain.tld. Set CRM_MAIL_FROM."
        )
    mail = build_email(message, settings.mail_from.strip(), destination["to"])
    context = ssl.create_default_context()
    if server.implicit_tls:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            server.host, server.port, timeout=server.timeout, context=context
        )
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
    with client:
        if server.starttls:
            client.starttls(context=context)
        if server.username:
            client.login(server.username, server.password or "")
        refused = client.send_message(mail, to_addrs=list(destination["to"]))
    if refused:
        raise DeliveryError(f"The mail server refused {', '.join(sorted(refused))}.")


def webhook_body(message: Message, sent_at: datetime) -> bytes:
    """The JSON a webhook receives: kind, subject, payload, attachment list, sent_at."""
    body = {
        "kind": message.kind,
        "subject": message.subject,
        "payload": message.payload,
        "attachments": [
            {"name": a.name, "size": len(a.data), "sha256": a.sha256} for a in message.attachments
        ],
        "sent_at": sent_at.isoformat(timespec="seconds") + "Z",
    }
    return json.dumps(body, default=str, ensure_ascii=False).encode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer other than 2xx: fail instead of re-sending elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _send_webhook(message: Message, destination: Mapping[str, Any], sent_at: datetime) -> None:
    body = webhook_body(message, sent_at)
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        destination["url"],
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "CRM-Insights-webhook",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(destination["secret"], body, timestamp),
        },
    )
    try:
        with _OPENER.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        detail = exc.read(200).decode(errors="replace").strip()
        raise DeliveryError(
            f"The receiver answered HTTP {exc.code} {exc.reason}"
            + (f": {detail}" if detail else "")
        ) from exc
    except urllib.error.URLError as exc:
        raise DeliveryError(f"Cannot reach {destination['url']}: {exc.reason}") from exc
    if not 200 <= status < 300:
        raise DeliveryError(f"The receiver answered HTTP {status} (expected 2xx).")


FILE_MODE = 0o644
"""Permissions of a delivered file: the owner writes, everyone on the server reads."""


def _write_atomic(folder: Path, name: str, data: bytes) -> Path:
    """Write `data` as folder/name whole or not at all (temporary file, then rename)."""
    final = folder / name
    handle, temp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes the file private (0600); a team's outbox is read by other accounts,
        # as files in the exports folder are (0644).
        os.chmod(temp, FILE_MODE)
        os.replace(temp, final)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return final


def _safe_name(name: str) -> str:
    """A file name without folders (an attachment cannot write outside its folder)."""
    cleaned = Path(name.replace("\\", "/")).name.strip()
    if cleaned in ("", ".", ".."):
        raise _Permanent(f"Attachment name {name!r} is not a file name; give it a plain name.")
    return cleaned


def manifest_name(message: Message, sent_at: datetime, delivery_id: int) -> str:
    """The folder manifest's file name: time, kind and delivery id make it unique."""
    return f"{sent_at:%Y%m%dT%H%M%SZ}-{message.kind}-{delivery_id}.manifest.json"


def _send_folder(
    message: Message, destination: Mapping[str, Any], sent_at: datetime, delivery_id: int
) -> None:
    folder = Path(destination["path"])
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for attachment in message.attachments:
        name = _safe_name(attachment.name)
        _write_atomic(folder, name, attachment.data)
        files.append(
            {
                "name": name,
                "size": len(attachment.data),
                "sha256": attachment.sha256,
                "mime": attachment.mime,
            }
        )
    manifest = {
        "kind": message.kind,
        "subject": message.subject,
        "sent_at": sent_at.isoformat(timespec="seconds") + "Z",
        "delivery_id": delivery_id,
        "files": files,
        "text": message.text,
        "payload": message.payload,
    }
    data = json.dumps(manifest, indent=2, default=str, ensure_ascii=False).encode()
    _write_atomic(folder, manifest_name(message, sent_at, delivery_id), data)


# --- deliver ------------------------------------------------------------------------------


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, DeliveryError):
        text = f"{type(exc).__name__}: {text}"
    return text[:2000]


def _new_row(store: Store, run_id: int | None, destination: Mapping[str, Any], retries: int) -> int:
    with store.begin() as conn:
        lock_tables(conn, deliveries)  # next id = max + 1: one writer at a time
        delivery_id = next_id(conn, deliveries.c.delivery_id)
        conn.execute(
            deliveries.insert().values(
                delivery_id=delivery_id,
                run_id=run_id,
                kind=destination["kind"],
                target=target(destination),
                status="failed",
                attempts=0,
                error=f"Not delivered yet: attempt 1 of {retries} is running.",
                created_at=utcnow(),
                sent_at=None,
            )
        )
    return delivery_id


def _update_row(store: Store, delivery_id: int, **values: Any) -> None:
    with store.begin() as conn:
        conn.execute(
            deliveries.update().where(deliveries.c.delivery_id == delivery_id).values(**values)
        )


def deliver(
    store: Store,
    message: Message,
    destinations: object,
    *,
    run_id: int | None = None,
    settings: Settings | None = None,
    retries: int = 3,
    backoff_seconds: Sequence[float] = (1.0, 4.0, 16.0),
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeliveryResult]:
    """Send `message` to each destination (up to `retries` tries, pausing backoff_seconds[i]
    between them), one `deliveries` row each; a failed destination never raises.

    Invalid destinations raise DeliveryError before anything is sent (validate them when a
    schedule is saved)."""
    checked = validate_destinations(destinations)
    settings = settings or get_settings()
    retries = max(1, int(retries))
    results = []
    for destination in checked:
        delivery_id = _new_row(store, run_id, destination, retries)
        attempts, error, sent_at = 0, None, None
        for attempt in range(1, retries + 1):
            attempts = attempt
            now = utcnow()
            try:
                if destination["kind"] == "email":
                    _send_email(message, destination, settings)
                elif destination["kind"] == "webhook":
                    _send_webhook(message, destination, now)
                else:
                    _send_folder(message, destination, now, delivery_id)
            except Exception as exc:  # any failure of one destination is recorded, not raised
                error = _error_text(exc)
                permanent = isinstance(exc, _Permanent)
                last = attempt == retries or permanent
                note = error if last else f"{error} (attempt {attempt} of {retries}; retrying)"
                _update_row(store, delivery_id, attempts=attempt, error=note)
                if last:
                    break
                sleep(float(backoff_seconds[min(attempt - 1, len(backoff_seconds) - 1)]))
            else:
                error, sent_at = None, now
                _update_row(
                    store, delivery_id, attempts=attempt, status="sent", error=None, sent_at=now
                )
                break
        results.append(
            DeliveryResult(
                delivery_id=delivery_id,
                kind=destination["kind"],
                target=target(destination),
                status="sent" if sent_at else "failed",
                attempts=attempts,
                error=error,
                sent_at=sent_at,
            )
        )
    return results


def read_deliveries(store: Store, run_id: int | None = None, limit: int = 200):
    """The latest deliveries (of one run when `run_id` is given), newest first."""
    stmt = sa.select(deliveries).order_by(deliveries.c.delivery_id.desc()).limit(limit)
    if run_id is not None:
        stmt = stmt.where(deliveries.c.run_id == run_id)
    return store.read_df(stmt)
