"""Personal data by role: every view and export, scanned for the demo's unmasked values.

Each view a role may open is rendered in AppTest and every element that would reach the
browser (text, tables as Arrow bytes, charts as JSON, widget options) is searched for the
demo's e-mails, phones, full names and survey comments. Roles without personal data must
show none of them; a role with it must show some (so the scan itself is checked).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from crm_core import auth, export, segments
from crm_core.schema import customers, survey_responses
from crm_core.store import Store
from crm_ui.views import VIEWS
from tests.app.conftest import sign_in

NO_PII_ROLES = [r for r in auth.ROLES if not auth.can(r, "see_pii")]
MIN_NAME_LENGTH = 12
"""Full names shorter than this could occur inside other text by chance."""


def personal_values(store: Store) -> dict[str, set[bytes]]:
    """The demo's personal values, by kind, as the bytes a page would carry."""
    with store.connect() as conn:
        people = conn.execute(
            sa.select(customers.c.email, customers.c.phone, customers.c.first_name,
                      customers.c.last_name)
        ).all()  # fmt: skip
        comments = conn.execute(
            sa.select(survey_responses.c.comment).where(survey_responses.c.comment.is_not(None))
        ).scalars()
        comment_texts = {c for c in comments if c and "," in c}  # two phrases: never a term
    names = {f"{p.first_name} {p.last_name}" for p in people if p.first_name and p.last_name}
    return {
        "e-mail": {p.email.encode() for p in people if p.email},
        "phone": {p.phone.encode() for p in people if p.phone},
        "name": {n.encode() for n in names if len(n) >= MIN_NAME_LENGTH},
        "comment": {c.encode() for c in comment_texts},
    }


def rendered_bytes(at: AppTest) -> bytes:
    """Everything the last run would send to a browser, as serialised element messages."""
    chunks: list[bytes] = []

    def walk(node: object) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "SerializeToString"):
            chunks.append(proto.SerializeToString())
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return b"\n".join(chunks)


def found(payload: bytes, values: dict[str, set[bytes]]) -> dict[str, list[str]]:
    """Which personal values occur in `payload`, by kind (a few examples each)."""
    hits = {}
    for kind, candidates in values.items():
        shown = [v.decode() for v in candidates if v in payload]
        if shown:
            hits[kind] = sorted(shown)[:3]
    return hits


def file_text(path: Path) -> bytes:
    """An exported file's cells as text (XLSX and Parquet are compressed on disk)."""
    if path.suffix == ".xlsx":
        return pd.read_excel(path, dtype=str).to_csv(index=False).encode()
    if path.suffix == ".parquet":
        return pd.read_parquet(path).astype(str).to_csv(index=False).encode()
    return path.read_bytes()


def customer_with_everything(store: Store) -> int:
    """A customer with an e-mail, a phone and a two-phrase survey comment."""
    stmt = (
        sa.select(customers.c.customer_id)
        .join(survey_responses, survey_responses.c.customer_id == customers.c.customer_id)
        .where(
            customers.c.email.is_not(None),
            customers.c.phone.is_not(None),
            survey_responses.c.comment.like("%,%"),
        )
        .order_by(customers.c.customer_id)
        .limit(1)
    )
    with store.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def walk_views(role: str, customer_id: int, only: str | None = None) -> dict[str, bytes]:
    """Render every view `role` may open (or just `only`; the 360 profile opened on
    `customer_id`), by view key."""
    at = sign_in(role)
    pages = {}
    for view in VIEWS:
        if not auth.may_view(role, view.key) or only not in (None, view.key):
            continue
        at.switch_page(view.path).run()
        assert not at.exception, (role, view.key, at.exception)
        if view.key == "customer_360":
            at.text_input[0].input(str(customer_id)).run()
            assert not at.exception, at.exception
            assert at.metric, "the profile opened"
        pages[view.key] = rendered_bytes(at)
    return pages


@pytest.fixture
def demo_values(app_env: Path) -> tuple[dict[str, set[bytes]], int]:
    store = Store(f"duckdb:///{app_env}")
    try:
        return personal_values(store), customer_with_everything(store)
    finally:
        store.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("role", NO_PII_ROLES)
def test_no_view_shows_personal_data_to_a_role_without_it(demo_values, role):
    values, customer_id = demo_values
    pages = walk_views(role, customer_id)
    leaks = {key: hits for key, payload in pages.items() if (hits := found(payload, values))}
    assert leaks == {}, f"{role} sees personal data: {leaks}"


@pytest.mark.slow
def test_the_scan_finds_personal_data_where_the_role_may_see_it(demo_values):
    values, customer_id = demo_values
    profile = walk_views("marketer", customer_id, "customer_360")["customer_360"]
    hits = found(profile, values)
    assert {"e-mail", "phone", "comment"} <= set(hits), hits


def test_analyst_cannot_find_a_customer_by_e_mail(demo_values, signed_in):
    values, customer_id = demo_values
    at = signed_in("analyst")
    at.switch_page("app_pages/customer_360.py").run()
    email = sorted(values["e-mail"])[0].decode()
    at.text_input[0].input(email).run()
    assert not at.metric, "no profile opened"
    assert any("customer id" in e.value for e in at.error)
    assert found(rendered_bytes(at), values) == {}


def test_exports_of_roles_without_personal_data_carry_none(own_store: Path):
    store = Store(f"duckdb:///{own_store}")
    try:
        values = personal_values(store)
        segments.save_segment(
            store,
            "Everyone who bought",
            {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 1}]},
            owner="analyst",
            role="analyst",
        )
        someone = sorted(values["e-mail"])[0].decode()
        segments.save_segment(  # a marketer's rule names a person; the analyst exports it
            store,
            "One person",
            {"match": "all", "rules": [{"field": "email", "op": "eq", "value": someone}]},
            owner="marketer",
            role="marketer",
        )
        analyst = auth.get_user(store, "analyst")
        done = export.export_segment(store, "One person", user=analyst, channel="none")
        # the person, and the demo's planted copies of them that share the address
        same = store.read_df(
            sa.select(sa.func.count()).where(sa.func.lower(customers.c.email) == someone.lower())
        ).iloc[0, 0]
        assert done.rows == same >= 1
        assert found(file_text(done.path) + done.manifest_path.read_bytes(), values) == {}
        for fmt in export.FORMATS:
            done = export.export_segment(
                store,
                "Everyone who bought",
                user=analyst,
                channel="none",
                fmt=fmt,
                columns=export.allowed_columns("analyst"),
            )
            assert done.rows > 0
            payload = file_text(done.path) + done.manifest_path.read_bytes()
            assert found(payload, values) == {}, fmt
    finally:
        store.dispose()
