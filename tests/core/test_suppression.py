"""The suppression list: salted hashes of erased addresses that keep a re-imported address
out of exports (e-mail and SMS), add/remove/listing with audit rows, and unsubscribe and
bounce files (unsubscribes opt the customers out of e-mail), on DuckDB and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from crm_core import audit, auth, consent, export, features, segments, suppression
from crm_core.cli import main
from crm_core.errors import CRMError
from crm_core.schema import audit_log, customers, schema_meta, suppressions
from tests.core import tiny

pytestmark = pytest.mark.both_stores

EVERYONE = {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 1}]}
MIA = auth.User("mia", "Mia", "marketer")


def entries(store) -> list[tuple]:
    s = suppressions.c
    found = store.read_df(sa.select(s.value, s.kind, s.reason, s.hashed).order_by(s.value))
    return [(r.value, r.kind, r.reason, bool(r.hashed)) for r in found.itertuples()]


def audited(store, action: str) -> list[str]:
    stmt = sa.select(audit_log.c.details).where(audit_log.c.action == action)
    return list(store.read_df(stmt.order_by(audit_log.c.seq))["details"])


def test_address_hash_is_an_hmac_of_the_key_under_a_salt_made_once(store):
    first = suppression.address_hash(store, "email", " Ann.Lee+x@GoogleMail.com ")
    salt = store.scalar(sa.select(schema_meta.c.value).where(schema_meta.c.key == "privacy_salt"))
    assert len(bytes.fromhex(salt)) == 32
    expected = hmac.new(bytes.fromhex(salt), b"email:annlee@gmail.com", hashlib.sha256)
    assert first == expected.hexdigest()
    assert suppression.address_hash(store, "email", "annlee@gmail.com") == first  # same key
    phone = suppression.address_hash(store, "phone", "0151 1234567", country="DE")
    assert phone == suppression.address_hash(store, "phone", "+49 151 1234567")
    with pytest.raises(CRMError, match="no e-mail address"):
        suppression.address_hash(store, "email", "not an address")


def test_add_remove_and_listing_compare_addresses_by_key_and_audit(store):
    assert suppression.add(store, "email", " Di@Example.com", reason="complaint", by="ada")
    assert not suppression.add(store, "email", "di@example.com", reason=None, by="ada")
    assert suppression.add(store, "phone", "+44 20 7946 0958", reason=None, by="ada")
    assert entries(store) == [
        ("+44 20 7946 0958", "phone", "added by an admin", False),
        ("Di@Example.com", "email", "complaint", False),
    ]
    listed = suppression.listing(store, search="example")
    assert list(listed["address"]) == ["Di@Example.com"]
    assert list(listed.columns) == ["address", "kind", "reason", "added_at", "hashed"]
    assert suppression.remove(store, "DI@example.com", by="ada")  # by its key
    assert not suppression.remove(store, "di@example.com", by="ada")
    assert [e[0] for e in entries(store)] == ["+44 20 7946 0958"]
    assert len(audited(store, "suppression_added")) == 2
    assert len(audited(store, "suppression_removed")) == 1
    assert not any("example" in d or "7946" in d for d in audited(store, "suppression_added"))
    with pytest.raises(CRMError, match="no phone number"):
        suppression.add(store, "phone", "   ", reason=None, by="ada")
    assert audit.verify(store).ok


def test_add_hashed_replaces_the_plain_entry_and_lists_it_hashed(store):
    suppression.add(store, "email", "Ann@Example.com", reason="bounce", by="ada")
    with store.begin() as conn:
        suppression.add_hashed(conn, "email", "ann@example.com")
        suppression.add_hashed(conn, "email", "ANN@example.com")  # once per address
        suppression.add_hashed(conn, "phone", "020 7946 0000", country="GB")
    stored = entries(store)
    assert len(stored) == 2 and all(e[3] for e in stored)
    assert not any("ann" in e[0].lower() or "7946" in e[0] for e in stored)
    assert {e[2] for e in stored} == {"erased"}
    listed = suppression.listing(store)
    assert set(listed["address"]) == {suppression.HASHED_LABEL}
    assert len(suppression.listing(store, search="ann@example.com")) == 1
    assert suppression.listing(store, search="bob@example.com").empty
    assert not suppression.add(store, "email", "ann@example.com", reason=None, by="ada")
    assert suppression.remove(store, "+44 20 7946 0000", by="ada")  # the hash, by its address
    assert len(entries(store)) == 1


@pytest.fixture
def shop(store):
    """Tiny store: customer 1 (US) with e-mail and SMS consent and a phone; segment Everyone."""
    tiny.load(store)
    with store.begin() as conn:
        conn.execute(
            customers.update()
            .where(customers.c.customer_id == 1)
            .values(phone="+1 555 123 4567", consent_sms=True)
        )
    features.refresh(store)
    segments.save_segment(store, "Everyone", EVERYONE, owner="mia")
    return store


def exported_ids(store, channel: str, tmp_path: Path) -> tuple[set[int], dict[str, int]]:
    result = export.export_segment(store, "Everyone", user=MIA, channel=channel, out=tmp_path)
    with result.path.open() as handle:
        ids = {int(line.split(",")[0]) for line in handle.readlines()[1:]}
    return ids, result.excluded


def test_a_hashed_suppression_keeps_a_reimported_address_out_of_exports(shop, tmp_path):
    ids, _ = exported_ids(shop, "email", tmp_path)
    assert 1 in ids
    with shop.begin() as conn:  # customer 1 erased: addresses kept only as hashes
        suppression.add_hashed(conn, "email", "ann@example.com")
        suppression.add_hashed(conn, "phone", "+15551234567")
    # the same person comes back through an import, her address written differently
    with shop.begin() as conn:
        conn.execute(
            customers.update()
            .where(customers.c.customer_id == 1)
            .values(email=" ANN@example.com", phone="(555) 123-4567")
        )
    ids, excluded = exported_ids(shop, "email", tmp_path)
    assert 1 not in ids and excluded["suppressed"] == 1
    with pytest.raises(CRMError, match="on the suppression list: 1"):
        exported_ids(shop, "sms", tmp_path)  # customer 1 was the only one with SMS consent
    ids, excluded = exported_ids(shop, "none", tmp_path)
    assert 1 not in ids and excluded["suppressed"] == 1


def test_hashed_matches_parses_only_phones_in_a_hashed_bucket(shop, monkeypatch):
    with shop.begin() as conn:
        suppression.add_hashed(conn, "phone", "+15551234567")
    members = shop.read_arrow(
        sa.select(customers.c.phone, customers.c.email, customers.c.country).order_by(
            customers.c.customer_id
        )
    )
    parsed = []
    real = suppression.contacts.phone_key

    def counting(phone, country=None):
        parsed.append(len(phone))
        return real(phone, country)

    monkeypatch.setattr(suppression.contacts, "phone_key", counting)
    found = suppression.hashed_matches(shop, members, "phone")
    assert found.tolist() == [True, False, False, False]
    assert sum(parsed) == 1  # only customer 1's phone was parsed


UNSUBSCRIBES = (
    "Email Address,First Name,UNSUB_TIME,UNSUB_REASON\n"
    "ANN@example.com,Ann,2024-03-01 10:00:00,Too many e-mails\n"
    "nobody@example.com,No,2024-03-02 11:00:00,\n"
    "not an address,X,2024-03-02 11:00:00,\n"
    "ann@example.com,Ann,2024-03-03 10:00:00,again\n"
)


def test_an_unsubscribe_file_suppresses_and_opts_customers_out(shop, tmp_path):
    path = tmp_path / "mailchimp_unsubscribed.csv"
    path.write_text(UNSUBSCRIBES, encoding="utf-8")
    header = UNSUBSCRIBES.splitlines()[0].split(",")
    assert suppression.suggest_columns(header) == {
        "email": "Email Address",
        "date": "UNSUB_TIME",
        "reason": "UNSUB_REASON",
    }
    dry = suppression.import_list(
        shop, path, list_kind="unsubscribes", by="ada", date_column="UNSUB_TIME", dry_run=True
    )
    assert (dry.added, dry.consent_changed, dry.not_addresses) == (2, 1, 1)
    assert entries(shop) == [] and consent.history(shop, 1).empty
    done = suppression.import_list(
        shop,
        path,
        list_kind="unsubscribes",
        by="ada",
        date_column="UNSUB_TIME",
        reason_column="UNSUB_REASON",
    )
    assert (done.rows, done.added, done.already, done.not_addresses) == (4, 2, 0, 1)
    assert done.consent_changed == 1 and done.examples == ["4"]
    assert "opted 1 customer(s) out of e-mail" in done.summary()
    assert entries(shop) == [
        ("ANN@example.com", "email", "Too many e-mails", False),
        ("nobody@example.com", "email", "unsubscribed (mailchimp_unsubscribed.csv)", False),
    ]
    added = shop.scalar(
        sa.select(suppressions.c.added_at).where(suppressions.c.value == "ANN@example.com")
    )
    assert str(added).startswith("2024-03-01 10:00")
    value = shop.scalar(sa.select(customers.c.consent_email).where(customers.c.customer_id == 1))
    assert bool(value) is False
    newest = consent.history(shop, 1).iloc[0]
    assert (newest.source, newest.changed_by, newest.channel) == (
        "unsubscribe_file",
        "ada",
        "email",
    )
    assert consent.as_bool(newest.old_value) is True and consent.as_bool(newest.new_value) is False
    details = audited(shop, "suppression_added")
    assert len(details) == 1 and "mailchimp_unsubscribed.csv" in details[0]
    assert "ann@" not in details[0].lower()
    again = suppression.import_list(shop, path, list_kind="unsubscribes", by="ada")
    assert (again.added, again.already, again.consent_changed) == (0, 2, 0)


def test_a_bounce_file_only_suppresses(shop, tmp_path):
    path = tmp_path / "klaviyo.csv"
    path.write_text("Email;Reason\nbob@example.com;hard bounce\n", encoding="utf-8")
    done = suppression.import_list(shop, path, list_kind="bounces", by="ada")
    assert (done.added, done.consent_changed) == (1, 0)
    assert entries(shop) == [("bob@example.com", "email", "bounced (klaviyo.csv)", False)]
    value = shop.scalar(sa.select(customers.c.consent_email).where(customers.c.customer_id == 2))
    assert bool(value) is True
    with pytest.raises(CRMError, match="allowed: unsubscribes, bounces"):
        suppression.import_list(shop, path, list_kind="spam", by="ada")
    path.write_text("Name\nBob\n", encoding="utf-8")
    with pytest.raises(CRMError, match="no e-mail column found"):
        suppression.import_list(shop, path, list_kind="bounces", by="ada")


def test_the_cli_adds_lists_imports_and_removes(store, capsys, tmp_path):
    assert main(["suppressions", "add", "email", "Eve@Example.com", "--reason", "asked"]) == 0
    assert "Added Eve@Example.com." in capsys.readouterr().out
    assert main(["suppressions", "add", "email", "eve@example.com"]) == 0
    assert "already" in capsys.readouterr().out
    path = tmp_path / "bounces.csv"
    path.write_text("Email\nzed@example.com\n", encoding="utf-8")
    assert main(["suppressions", "import", str(path), "--list", "bounces", "--dry-run"]) == 0
    assert "would add 1 address(es)" in capsys.readouterr().out
    assert main(["suppressions", "import", str(path), "--list", "bounces"]) == 0
    assert main(["suppressions", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert {r["address"] for r in listed} == {"Eve@Example.com", "zed@example.com"}
    assert main(["suppressions", "remove", "EVE@example.com", "--user", "ada"]) == 0
    assert "Removed" in capsys.readouterr().out
    assert main(["suppressions", "add", "email", "nope"]) == 2
    assert "no e-mail address" in capsys.readouterr().err


def test_stored_hash_format_and_its_bucket_are_pinned():
    """The bucket is pandas' SipHash keyed by the salt: if pandas ever changed it, stored
    entries would no longer match; this pins one value."""
    salt = bytes(range(32))
    stored = suppression._stored(salt, "email", "ann@example.com")
    bucket, digest = stored.split(":")
    assert digest == hmac.new(salt, b"email:ann@example.com", hashlib.sha256).hexdigest()
    assert bucket == "ef66"
    keys = pa.array(["x", " ANN@Example.com", "a.n.n+x@GoogleMail.com", "no", None, "Ä@x.de "])
    rows, found = suppression._email_keys(pa.chunked_array([keys]))
    assert rows.tolist() == [1, 2, 5]
    assert found.tolist() == ["ann@example.com", "ann@gmail.com", "ä@x.de"]
