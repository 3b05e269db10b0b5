"""The CLI: init, users, kpis (in-process through main(), plus one real subprocess)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from crm_core import auth
from crm_core.cli import main
from crm_core.filters import order_date_range
from crm_core.store import get_store
from tests.core import tiny

ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys, *args: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_init_empty_creates_admin_once_with_random_password(store, capsys):
    code, out, _ = run_cli(capsys, "init", "--dataset", "empty")
    assert code == 0
    assert "created the user 'admin'" in out
    password = out.split("password\n\n")[1].split()[0]
    assert len(password) >= auth.MIN_PASSWORD_LENGTH
    admin_hash = auth.authenticator_credentials(store)["usernames"]["admin"]["password"]
    assert auth.check_password(password, admin_hash)
    code, out, _ = run_cli(capsys, "init", "--dataset", "empty")
    assert code == 0 and "created the user" not in out and password not in out


def test_users_add_reset_list(store, capsys, monkeypatch):
    code, out, _ = run_cli(
        capsys,
        "users",
        "add",
        "mia",
        "--role",
        "marketer",
        stdin="a-long-password\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "Added mia (marketer)" in out
    hashed = auth.authenticator_credentials(store)["usernames"]["mia"]["password"]
    assert auth.check_password("a-long-password", hashed)
    code, out, _ = run_cli(capsys, "users", "reset", "mia", "--generate")
    new_password = out.strip().split()[-1]
    hashed = auth.authenticator_credentials(store)["usernames"]["mia"]["password"]
    assert auth.check_password(new_password, hashed)
    code, out, _ = run_cli(capsys, "users", "list")
    assert "mia" in out and "marketer" in out


def test_users_add_bad_role_or_short_password_exits_2(store, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(["users", "add", "mia", "--role", "boss"])
    code, _, err = run_cli(
        capsys, "users", "add", "mia", "--role", "analyst", stdin="short\n", monkeypatch=monkeypatch
    )
    assert code == 2 and "error: Password too short" in err


def test_kpis_json_matches_metrics(store, capsys):
    tiny.load(store)
    code, out, _ = run_cli(capsys, "kpis", "--start", "2024-02-01", "--end", "2024-02-29", "--json")
    assert code == 0
    figures = json.loads(out)
    assert figures["previous_start"] == "2024-01-03"
    assert figures["kpis"]["revenue"]["value"] == pytest.approx(170.0)
    assert figures["kpis"]["revenue"]["previous"] == pytest.approx(300.0)
    assert figures["kpis"]["nps"]["value"] == pytest.approx(0.0)
    code, out, _ = run_cli(
        capsys, "kpis", "--start", "2024-02-01", "--end", "2024-02-29", "--country", "GB", "--json"
    )
    assert json.loads(out)["kpis"]["revenue"]["value"] == pytest.approx(80.0)


def test_kpis_errors_are_clear(store, capsys):
    code, _, err = run_cli(capsys, "kpis")
    assert code == 2 and "no orders" in err
    tiny.load(store)
    code, _, err = run_cli(capsys, "kpis", "--start", "2024-03-01", "--end", "2024-02-01")
    assert code == 2 and "before --start" in err


def test_real_entry_point_prints_kpis(store, tmp_path):
    tiny.load(store)
    store.dispose()
    get_store().dispose()
    env = {**os.environ, "CRM_DATABASE_URL": store.url, "CRM_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "crm_core", "kpis", "--start", "2024-02-01", "--end", "2024-02-29"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Revenue" in done.stdout and "$170.00" in done.stdout


def test_import_command_loads_a_file_and_reports_bad_ones(store, capsys, tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,signup_at,country\n1,2024-01-01,US\n2,2024-01-02,GB\n")
    code, out, _ = run_cli(capsys, "import", "customers", str(customers))
    assert code == 0 and "Imported customers.csv (append) as batch 1: customers 2." in out
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,customer_id,ordered_at,amount\n1,1,2024-02-01,abc\n")
    code, _, err = run_cli(capsys, "import", "orders", str(orders))
    assert code == 2
    assert "orders.csv row 2, column amount: 'abc' is not a number" in err
    assert store.row_counts(("orders",))["orders"] == 0


def test_import_with_a_mapping_dry_run_partial_history_and_undo(store, capsys, tmp_path):
    customers = tmp_path / "crm_contacts.csv"
    customers.write_text(
        "Contact;E-mail Address;Signed up;Land\n"
        "7;Ann@Example.com;05.03.2024;DE\n"
        "8;bob@example.com;31.12.2024;AT\n"
        "9;carl@example.com;not a date;CH\n",
        encoding="latin-1",
    )
    spec = tmp_path / "contacts.json"
    spec.write_text(
        json.dumps(
            {
                "name": "crm-contacts",
                "table": "customers",
                "columns": {
                    "customer_id": "Contact",
                    "email": "E-mail Address",
                    "signup_at": "Signed up",
                    "country": "Land",
                },
            }
        )
    )
    code, out, _ = run_cli(
        capsys, "import", "customers", str(customers), "--mapping", str(spec), "--dry-run"
    )
    assert code == 1 and "Dry run of crm_contacts.csv: 1 problem(s), so the import would" in out
    assert "crm_contacts.csv row 4, column Signed up (signup_at): 'not a date' is not a date" in out
    assert store.row_counts(("customers",))["customers"] == 0

    code, out, _ = run_cli(capsys, "mappings", "save", str(spec))
    assert code == 0 and "Saved mapping 'crm-contacts' (customers)." in out
    code, out, _ = run_cli(capsys, "mappings", "list")
    assert "crm-contacts  (saved, customers)" in out and "shopify-orders  (preset, orders)" in out

    rejects = tmp_path / "bad.csv"
    code, out, _ = run_cli(
        capsys,
        "import",
        "customers",
        str(customers),
        "--mapping",
        "crm-contacts",
        "--on-error",
        "skip",
        "--rejects",
        str(rejects),
    )
    assert code == 0 and "as batch 1: customers 2." in out
    assert "1 row(s) rejected, with the reason per row, in" in out
    rejected = list(csv.reader(rejects.read_text().splitlines()))
    assert rejected[0] == ["row", "reason", "Contact", "E-mail Address", "Signed up", "Land"]
    assert rejected[1][0] == "4" and "'not a date' is not a date/time" in rejected[1][1]
    assert rejected[1][2:] == ["9", "carl@example.com", "not a date", "CH"]
    stored = store.read_df("SELECT customer_id, email, signup_at FROM customers ORDER BY 1")
    assert stored["email"].tolist() == ["Ann@Example.com", "bob@example.com"]
    assert str(stored["signup_at"].iloc[1]) == "2024-12-31 00:00:00"

    code, out, _ = run_cli(capsys, "imports", "history")
    assert code == 0 and "cli  crm_contacts.csv (append): customers 2; 1 rejected" in out
    code, out, _ = run_cli(capsys, "imports", "undo", "--table", "customers")
    assert code == 0 and out.startswith("Undid import 1 (crm_contacts.csv): removed customers 2")
    code, out, _ = run_cli(capsys, "imports", "history")
    assert "; undone " in out and " by cli" in out
    code, _, err = run_cli(capsys, "mappings", "delete", "shopify-orders")
    assert code == 2 and "presets cannot be deleted" in err
    assert store.row_counts(("customers",))["customers"] == 0
    code, _, err = run_cli(capsys, "import", "orders", str(customers), "--mapping", "crm-contacts")
    assert code == 2 and "imports into customers, not orders" in err


def test_import_by_name_reads_the_layout_and_values_as_the_page_does(store, capsys, tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id;signup_at;Country\n1;05.03.2024;DE\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "import", "customers", str(customers))
    assert code == 2 and "looks like it is separated by ';'" in err
    code, _, err = run_cli(capsys, "import", "customers", str(customers), "--mapping", "by-name")
    assert code == 2 and "every date could be read day-first or month-first" in err
    code, out, _ = run_cli(
        capsys, "import", "customers", str(customers), "--mapping", "by-name", "--date-order", "DMY"
    )
    assert code == 0 and "customers 1" in out
    stored = store.read_df("SELECT signup_at, country FROM customers")
    assert str(stored["signup_at"].iloc[0]) == "2024-03-05 00:00:00"


def test_init_cdnow_imports_the_real_sample(store, capsys):
    code, out, _ = run_cli(capsys, "init", "--dataset", "cdnow")
    assert code == 0 and "CDNOW imported" in out
    assert store.row_counts(("customers", "orders")) == {"customers": 2357, "orders": 6919}


def test_init_demo_reports_how_long_it_took(store, capsys):
    code, out, _ = run_cli(capsys, "init", "--customers", "300", "--seed", "3")
    assert code == 0
    # 300 people, and the copies of the ones the demo plants as duplicates (about 3%)
    people, planted = store.row_counts(("customers", "planted_duplicates")).values()
    assert people == 300 + planted and 6 <= planted <= 15
    assert "Demo store created in" in out and f"customers {people}" in out
    assert f"planted_duplicates {planted}" in out
    yesterday = date.today() - timedelta(days=1)
    assert f"history up to {yesterday:%d %b %Y}" in out
    assert yesterday - timedelta(days=7) <= order_date_range(store)[1] <= yesterday
    code, out, _ = run_cli(capsys, "init")
    assert f"already has {people} customers; data left as it is" in out


def test_users_deactivate_activate_set_role_remove_and_list(store, capsys):
    auth.add_user(store, "admin", "admin", "admin-password-1")
    auth.add_user(store, "mia", "marketer", "mia-password-1")
    auth.record_login(store, "mia", success=True)
    code, out, _ = run_cli(capsys, "users", "deactivate", "mia")
    assert code == 0 and "Deactivated mia" in out
    assert "mia" not in auth.authenticator_credentials(store)["usernames"]
    code, out, _ = run_cli(capsys, "users", "list")
    mia = next(line for line in out.splitlines() if line.startswith("mia "))
    assert mia.split()[:3] == ["mia", "marketer", "deactivated"]
    assert "last sign-in" in out.splitlines()[0]
    assert out.splitlines()[1].split()[:4] == ["admin", "admin", "active", "never"]
    code, out, _ = run_cli(capsys, "users", "activate", "mia")
    assert code == 0 and "Reactivated mia" in out and auth.get_user(store, "mia").active
    code, out, _ = run_cli(capsys, "users", "set-role", "mia", "analyst")
    assert code == 0 and "mia is now analyst" in out
    assert auth.get_user(store, "mia").role == "analyst"
    code, out, _ = run_cli(capsys, "users", "remove", "mia")
    assert code == 0 and "Removed mia" in out and auth.get_user(store, "mia") is None


@pytest.mark.parametrize(
    "args,message",
    [
        (("remove", "admin"), "Cannot remove 'admin': it is the last active admin"),
        (("deactivate", "admin"), "Cannot deactivate 'admin': it is the last active admin"),
        (("set-role", "admin", "analyst"), "Cannot demote 'admin': it is the last active admin"),
        (("set-role", "admin", "boss"), "Unknown role 'boss'; allowed: admin, manager"),
        (("activate", "ghost"), "No user 'ghost'"),
        (("remove", "ghost"), "No user 'ghost'"),
    ],
)
def test_users_lifecycle_bad_input_exits_2_with_one_line(store, capsys, args, message):
    auth.add_user(store, "admin", "admin", "admin-password-1")
    code, out, err = run_cli(capsys, "users", *args)
    assert code == 2 and not out
    assert err.startswith(f"error: {message}") and len(err.strip().splitlines()) == 1
    assert auth.get_user(store, "admin") == auth.User("admin", "admin", "admin", None, True)
