"""CRM_ANALYTICS_URL set to something that is not there: a clear error at once, never a
silent wait, and the app's own tables still readable (no Java needed)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from crm_core import cli, metrics, schema, spark
from crm_core.errors import SparkError
from crm_core.spark import _free_port  # a loopback port nothing listens on
from crm_core.store import Store


def test_an_address_that_is_not_spark_connect_is_named():
    with pytest.raises(SparkError, match=r"not a Spark Connect address.*sc://host:15002"):
        spark.SparkStore("http://127.0.0.1:15002", "lake")


def test_an_unreachable_server_is_an_error_within_the_connect_timeout(tmp_path: Path):
    url = f"sc://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(SparkError, match=r"Cannot reach Spark Connect at .*refused.*lake serve"):
        spark.SparkStore(url, tmp_path)
    assert time.monotonic() - started < spark.CONNECT_TIMEOUT


def test_a_port_that_accepts_but_never_answers_is_an_error_too(monkeypatch, tmp_path: Path):
    """A proxy with nothing behind it: the client's channel never comes up."""
    monkeypatch.setattr(spark, "CONNECT_TIMEOUT", 2.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nobody ever answers
        url = f"sc://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(SparkError, match="accepts, but no Spark Connect answered in 2 s"):
            spark.SparkStore(url, tmp_path)
        assert time.monotonic() - started < 10


def test_the_routed_store_needs_spark_only_for_the_facts(store: Store, tmp_path: Path):
    """Signing in and the app's tables work while Spark is down; a fact read says why it
    cannot run, and the store's own (empty) facts are never read instead."""
    routed = spark.AnalyticsStore(store.url, f"sc://127.0.0.1:{_free_port()}", tmp_path)
    try:
        assert routed.scalar(sa.select(sa.func.count()).select_from(schema.table("app_users"))) == 0
        assert not routed.connected
        with pytest.raises(SparkError, match="Cannot reach Spark Connect"):
            routed.scalar(sa.select(sa.func.count()).select_from(schema.orders))
    finally:
        routed.dispose()


def test_the_cli_says_spark_is_unreachable_instead_of_waiting(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("CRM_ANALYTICS_URL", f"sc://127.0.0.1:{_free_port()}")
    code = cli.main(["report", "overview", "--start", "2025-01-01", "--end", "2025-12-31"])
    assert code == 2
    assert "Cannot reach Spark Connect" in capsys.readouterr().err


def test_json_numbers_lose_another_engines_last_bit_noise():
    noisy = {"revenue": 1240886.3900000001, "rows": [{"share": 0.1 + 0.2}], "count": 7}
    assert metrics.json_ready(noisy) == {
        "revenue": 1240886.39,
        "rows": [{"share": 0.3}],
        "count": 7,
    }
    assert metrics.json_ready(float("nan")) != metrics.json_ready(float("nan"))  # left as NaN
