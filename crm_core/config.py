"""Settings from CRM_* environment variables, each with a default and a help text."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from crm_core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


_PARSERS = {"Path": Path, "str": str, "int": int, "float": float}


def _default_data_dir() -> Path:
    return PROJECT_ROOT / "data"


@dataclass(frozen=True)
class Settings:
    """Runtime settings; every field can be set as CRM_<NAME> in the environment."""

    data_dir: Path = field(
        default_factory=_default_data_dir,
        metadata={"help": "Folder for the default DuckDB store, secrets and exports."},
    )
    database_url: str = field(
        default="",
        metadata={
            "help": "SQLAlchemy URL of the store, e.g. duckdb:///data/crm.duckdb or "
            "postgresql+psycopg://user@host/db. Empty means <data_dir>/crm.duckdb."
        },
    )
    demo_customers: int = field(
        default=20_000,
        metadata={"help": "Customers in the demo store that `make run` creates on first start."},
    )
    demo_seed: int = field(default=42, metadata={"help": "Random seed of the demo store."})
    max_login_attempts: int = field(
        default=5, metadata={"help": "Failed logins in a row before an account is locked."}
    )
    lockout_minutes: int = field(
        default=15, metadata={"help": "How long a locked account stays locked."}
    )
    cookie_expiry_days: float = field(
        default=1.0, metadata={"help": "Days a login cookie keeps a browser signed in."}
    )
    smtp_url: str = field(
        default="",
        metadata={
            "help": "Mail server for alerts, reports and exports, e.g. "
            "smtp://user:pass@host:587?starttls=true (empty: e-mail delivery is off)."
        },
    )
    mail_from: str = field(
        default="",
        metadata={"help": "Sender address of the e-mails, e.g. crm@example.com."},
    )
    chromium: str = field(
        default="/usr/bin/chromium",
        metadata={
            "help": "Chromium binary that draws the charts of e-mailed reports as images "
            "(missing: reports are sent without them)."
        },
    )
    scheduler_poll_seconds: float = field(
        default=30.0,
        metadata={"help": "How often the scheduler looks for due alerts, reports and exports."},
    )
    lake_dir: str = field(
        default="",
        metadata={
            "help": "Root folder of the Parquet lake Spark reads, one folder per table "
            "(`python -m crm_core lake sync` writes it). Empty means <data_dir>/lake."
        },
    )
    analytics_url: str = field(
        default="",
        metadata={
            "help": "Spark Connect endpoint for the analytics reads, e.g. sc://127.0.0.1:15002: "
            "the facts and customer_360 are read from the lake there; users, segments, logs "
            "and scores stay in the store. Empty means the store serves everything."
        },
    )
    lake_database: str = field(
        default="crm",
        metadata={
            "help": "Database (namespace) of Spark's catalog that holds the lake tables; "
            "the app registers the folders of CRM_LAKE_DIR there."
        },
    )
    scheduler: str = field(
        default="app",
        metadata={
            "help": "app: the server `make run` starts also runs due schedules; off: it does "
            "not (run `python -m crm_core scheduler` instead)."
        },
    )

    @property
    def lake_path(self) -> Path:
        """The Parquet lake Spark reads (`lake sync` writes it), defaulting to data_dir/lake."""
        return Path(self.lake_dir) if self.lake_dir else self.data_dir / "lake"

    @property
    def store_url(self) -> str:
        """The store's SQLAlchemy URL, defaulting to a DuckDB file in data_dir."""
        if self.database_url:
            return self.database_url
        return f"duckdb:///{self.data_dir / 'crm.duckdb'}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read every field from CRM_<NAME> (falling back to the default)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"CRM_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            parse = _PARSERS[str(f.type)]
            try:
                values[f.name] = parse(raw)
            except ValueError as exc:
                raise ConfigError(
                    f"CRM_{f.name.upper()}: {raw!r} is not a valid {f.type}; {f.metadata['help']}"
                ) from exc
        return cls(**values)

    @staticmethod
    def help() -> dict[str, str]:
        """Name of each environment variable with its help text (for README and --help)."""
        return {f"CRM_{f.name.upper()}": f.metadata["help"] for f in fields(Settings)}


def get_settings() -> Settings:
    """Current settings, read fresh from the environment (cheap, and tests change it)."""
    return Settings.from_env()
