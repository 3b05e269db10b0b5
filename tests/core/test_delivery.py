"""Deliveries to real receivers on loopback: an SMTP server, a signed webhook, a folder;
retries with backoff, failures recorded (never raised), destinations validated."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from crm_core import delivery
from crm_core.config import Settings
from crm_core.delivery import Attachment, Message
from crm_core.errors import DeliveryError
from crm_core.schema import deliveries
from tests.core.receivers import smtp_server, webhook_receiver

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32  # signature bytes are what the test checks


def message(**changes) -> Message:
    values = {
        "subject": "Revenue dropped",
        "text": "Revenue is 12% below last week.",
        "html": '<p>Revenue is 12% below last week.</p><img src="cid:chart.png">',
        "attachments": [Attachment("kpis.csv", b"kpi,value\nrevenue,100\n", "text/csv")],
        "images": [Attachment("chart.png", PNG, "image/png")],
        "payload": {"metric": "revenue", "value": 100.0},
        "kind": "alert",
    }
    return Message(**{**values, **changes})


def rows(store) -> list[dict]:
    with store.connect() as conn:
        found = conn.execute(sa.select(deliveries).order_by(deliveries.c.delivery_id))
        return [dict(r._mapping) for r in found]


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# --- validation -----------------------------------------------------------------------------


def test_valid_destinations_are_normalised():
    secret = delivery.new_secret()
    checked = delivery.validate_destinations(
        json.dumps(
            [
                {"kind": "email", "to": " ops@example.com "},
                {"kind": "webhook", "url": "https://hooks.example.com/crm", "secret": secret},
                {"kind": "webhook", "url": "http://127.0.0.1:8080/x", "secret": secret},
                {"kind": "webhook", "url": "http://localhost/x", "secret": secret},
                {"kind": "folder", "path": "/srv/crm/outbox/"},
            ]
        )
    )
    assert checked[0] == {"kind": "email", "to": ["ops@example.com"]}
    assert checked[1]["secret"] == secret and len(secret) == 64
    assert checked[4] == {"kind": "folder", "path": "/srv/crm/outbox"}
    shown = delivery.redact(checked)
    assert shown[1]["secret"] == delivery.REDACTED and secret not in json.dumps(shown)
    assert checked[1]["secret"] == secret  # redact copies
    assert delivery.describe(checked[0]) == "e-mail to ops@example.com"


@pytest.mark.parametrize(
    ("destination", "words"),
    [
        ({"kind": "email", "to": ["ops@example.com", "bob@"]}, "'bob@'"),
        ({"kind": "email", "to": []}, "at least one address"),
        ({"kind": "webhook", "url": "http://hooks.example.com/x", "secret": "a" * 32}, "https://"),
        ({"kind": "webhook", "url": "ftp://127.0.0.1/x", "secret": "a" * 32}, "not a web address"),
        ({"kind": "webhook", "url": "https://example.com/x", "secret": "short"}, "16 characters"),
        ({"kind": "folder", "path": "exports/out"}, "absolute path"),
        ({"kind": "fax", "number": "123"}, "unknown kind 'fax'"),
        ({"kind": "email", "to": ["a@b.com"], "cc": ["c@d.com"]}, "unknown field(s) cc"),
    ],
)
def test_invalid_destinations_say_what_and_how_to_fix(destination, words):
    with pytest.raises(DeliveryError) as caught:
        delivery.validate_destinations([destination])
    text = str(caught.value)
    assert words in text and "Destination 1" in text and "Allowed" in text
    assert "short" not in text or "secret" not in destination  # a secret is never echoed


def test_empty_or_malformed_destination_lists_are_refused():
    for value in ([], "not json", None, [3]):
        with pytest.raises(DeliveryError):
            delivery.validate_destinations(value)


def test_sign_and_verify():
    body, ts = b'{"a": 1}', "1700000000"
    signature = delivery.sign("s" * 32, body, ts)
    assert signature.startswith("sha256=")
    assert delivery.verify("s" * 32, body, ts, signature)
    assert not delivery.verify("s" * 32, body + b" ", ts, signature)
    assert not delivery.verify("t" * 32, body, ts, signature)
    assert not delivery.verify("s" * 32, body, "1700000001", signature)
    assert not delivery.verify("s" * 32, body, ts, signature, tolerance_seconds=300, now=1.8e9)
    assert delivery.verify("s" * 32, body, ts, signature, tolerance_seconds=300, now=1.7e9 + 10)


def test_smtp_url_is_parsed():
    server = delivery.parse_smtp_url("smtp://me%40x.com:p%3Ass@mail.x.com:2525?starttls=true")
    assert (server.host, server.port, server.starttls, server.implicit_tls) == (
        "mail.x.com",
        2525,
        True,
        False,
    )
    assert (server.username, server.password) == ("me@x.com", "p:ss")
    assert delivery.parse_smtp_url("smtps://mail.x.com").port == 465
    with pytest.raises(DeliveryError, match="CRM_SMTP_URL"):
        delivery.parse_smtp_url("http://mail.x.com")


# --- e-mail ----------------------------------------------------------------------------------


def test_email_reaches_a_real_smtp_server_with_html_image_and_attachment(store):
    with smtp_server(login=("crm", "s3cret")) as inbox:
        settings = Settings(
            smtp_url=f"smtp://crm:s3cret@127.0.0.1:{inbox.port}", mail_from="crm@example.com"
        )
        [result] = delivery.deliver(
            store,
            message(),
            [{"kind": "email", "to": ["ops@example.com", "cfo@example.com"]}],
            settings=settings,
            sleep=Sleeps(),
        )
    assert (result.status, result.attempts, result.error) == ("sent", 1, None)
    assert result.target == "ops@example.com, cfo@example.com"
    [envelope] = inbox.envelopes
    assert envelope.mail_from == "crm@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "cfo@example.com"]
    [mail] = inbox.messages
    assert mail["Subject"] == "Revenue dropped"
    assert mail.get_body(("plain",)).get_content().strip() == "Revenue is 12% below last week."
    assert "cid:chart.png" in mail.get_body(("html",)).get_content()
    [image] = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<chart.png>" and image.get_content() == PNG
    [csv] = list(mail.iter_attachments())
    assert csv.get_filename() == "kpis.csv" and csv.get_content().startswith("kpi,value")
    [row] = rows(store)
    assert (row["kind"], row["status"], row["attempts"], row["error"]) == ("email", "sent", 1, None)
    assert row["sent_at"] is not None


def test_email_without_smtp_url_fails_once_with_a_clear_error(store):
    sleeps = Sleeps()
    [result] = delivery.deliver(
        store,
        message(),
        [{"kind": "email", "to": ["ops@example.com"]}],
        settings=Settings(smtp_url="", mail_from="crm@example.com"),
        sleep=sleeps,
    )
    assert (result.status, result.attempts) == ("failed", 1)
    assert "CRM_SMTP_URL is not set" in result.error
    assert sleeps == []  # a missing setting is not retried
    assert rows(store)[0]["error"] == result.error


def test_wrong_smtp_password_is_a_failed_delivery(store):
    with smtp_server(login=("crm", "s3cret")) as inbox:
        settings = Settings(
            smtp_url=f"smtp://crm:wrong@127.0.0.1:{inbox.port}", mail_from="crm@example.com"
        )
        [result] = delivery.deliver(
            store, message(), [{"kind": "email", "to": ["a@b.com"]}], settings=settings,
            retries=2, sleep=Sleeps(),
        )  # fmt: skip
    assert (result.status, result.attempts) == ("failed", 2)
    assert "SMTPAuthenticationError" in result.error and inbox.envelopes == []


# --- webhook ---------------------------------------------------------------------------------


def test_webhook_body_is_signed_and_a_tampered_body_is_rejected(store):
    secret = delivery.new_secret()
    with webhook_receiver(secret) as hooks:
        [result] = delivery.deliver(
            store,
            message(),
            [{"kind": "webhook", "url": hooks.url, "secret": secret}],
            sleep=Sleeps(),
        )
        assert result.status == "sent"
        [received] = hooks.requests
        assert received["valid"]
        body = json.loads(received["body"])
        assert body["kind"] == "alert" and body["subject"] == "Revenue dropped"
        assert body["payload"] == {"metric": "revenue", "value": 100.0}
        assert body["attachments"] == [
            {
                "name": "kpis.csv",
                "size": len(b"kpi,value\nrevenue,100\n"),
                "sha256": Attachment("x", b"kpi,value\nrevenue,100\n").sha256,
            }
        ]
        assert body["sent_at"].endswith("Z")
        # The same headers on a changed body: the receiver's verify() says no.
        tampered = received["body"].replace(b"100.0", b"999.0")
        headers = {
            "Content-Type": "application/json",
            delivery.TIMESTAMP_HEADER: received["headers"][delivery.TIMESTAMP_HEADER],
            delivery.SIGNATURE_HEADER: received["headers"][delivery.SIGNATURE_HEADER],
        }
        request = urllib.request.Request(hooks.url, data=tampered, headers=headers)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 401
        assert hooks.requests[-1]["valid"] is False


@pytest.mark.both_stores
def test_webhook_that_fails_twice_then_succeeds_is_sent_on_the_third_attempt(store):
    secret = delivery.new_secret()
    sleeps = Sleeps()
    with webhook_receiver(secret, answers=[500, 503, 200]) as hooks:
        [result] = delivery.deliver(
            store,
            message(),
            [{"kind": "webhook", "url": hooks.url, "secret": secret}],
            run_id=7,
            sleep=sleeps,
        )
    assert (result.status, result.attempts, result.error) == ("sent", 3, None)
    assert sleeps == [1.0, 4.0]
    assert len(hooks.requests) == 3
    [row] = rows(store)
    assert (row["run_id"], row["status"], row["attempts"], row["error"]) == (7, "sent", 3, None)


@pytest.mark.both_stores
def test_a_receiver_that_always_fails_is_recorded_and_does_not_stop_the_others(store, tmp_path):
    secret = delivery.new_secret()
    sleeps = Sleeps()
    with webhook_receiver(secret, answers=[500] * 10) as hooks:
        results = delivery.deliver(
            store,
            message(),
            [
                {"kind": "webhook", "url": hooks.url, "secret": secret},
                {"kind": "folder", "path": str(tmp_path / "out")},
            ],
            sleep=sleeps,
        )
    failed, sent = results
    assert (failed.status, failed.attempts) == ("failed", 3)
    assert "HTTP 500" in failed.error
    assert sleeps == [1.0, 4.0]
    assert sent.status == "sent" and sent.attempts == 1
    stored = rows(store)
    assert [r["status"] for r in stored] == ["failed", "sent"]
    assert stored[0]["error"] == failed.error and stored[0]["attempts"] == 3
    assert [r["delivery_id"] for r in stored] == [failed.delivery_id, sent.delivery_id]


def test_an_unreachable_webhook_is_a_failed_delivery(store):
    from tests.core.receivers import free_port

    url = f"http://127.0.0.1:{free_port()}/hook"
    [result] = delivery.deliver(
        store,
        message(),
        [{"kind": "webhook", "url": url, "secret": delivery.new_secret()}],
        retries=2,
        sleep=Sleeps(),
    )
    assert result.status == "failed" and "Cannot reach" in result.error


# --- folder ----------------------------------------------------------------------------------


def test_folder_receives_the_files_and_a_manifest(store, tmp_path):
    folder = tmp_path / "drop" / "crm"  # created on first delivery
    export = Attachment("segment_vip_v2.csv", b"email\nann@example.com\n", "text/csv")
    [result] = delivery.deliver(
        store,
        message(attachments=[export], kind="export"),
        [{"kind": "folder", "path": str(folder)}],
        sleep=Sleeps(),
    )
    assert result.status == "sent"
    files = sorted(p.name for p in folder.iterdir())
    manifest_name = next(n for n in files if n.endswith(".manifest.json"))
    assert files == sorted(["segment_vip_v2.csv", manifest_name])  # no temporary files left
    assert (folder / "segment_vip_v2.csv").read_bytes() == export.data
    for name in files:  # readable by the other accounts that pick up a team's outbox
        assert (folder / name).stat().st_mode & 0o777 == 0o644
    manifest = json.loads((folder / manifest_name).read_text())
    assert manifest["kind"] == "export" and manifest["subject"] == "Revenue dropped"
    assert manifest["files"] == [
        {"name": "segment_vip_v2.csv", "size": len(export.data), "sha256": export.sha256,
         "mime": "text/csv"}
    ]  # fmt: skip
    assert manifest["delivery_id"] == result.delivery_id and manifest["sent_at"].endswith("Z")


def test_an_attachment_name_cannot_leave_its_folder(store, tmp_path):
    folder = tmp_path / "out"
    evil = Attachment("../../escape.csv", b"x", "text/csv")
    [result] = delivery.deliver(
        store, message(attachments=[evil]), [{"kind": "folder", "path": str(folder)}],
        sleep=Sleeps(),
    )  # fmt: skip
    assert result.status == "sent"
    assert (folder / "escape.csv").exists() and not (tmp_path / "escape.csv").exists()


def test_a_folder_that_cannot_be_written_is_a_failed_delivery(store, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    [result] = delivery.deliver(
        store, message(), [{"kind": "folder", "path": str(blocker / "sub")}], sleep=Sleeps()
    )
    assert result.status == "failed" and result.attempts == 3
    assert not Path(blocker / "sub").exists()
