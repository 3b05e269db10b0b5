"""CRMError and its subclasses: the only exceptions pages catch and show to users."""

from __future__ import annotations


class CRMError(Exception):
    """A problem a user can fix; its message says what, where, and how."""


class ConfigError(CRMError):
    """A setting or environment variable has a value we cannot use."""


class StoreError(CRMError):
    """The store cannot be opened, or a table it needs is missing."""


class SparkError(StoreError):
    """Spark Connect or its lake is not usable as configured (unreachable, a table missing)."""


class ImportValidationError(CRMError):
    """An import file failed validation; nothing was loaded.

    `problems` holds every problem found (the message shows the first 20 and a count).
    """

    max_shown = 20

    def __init__(self, file_name: str, problems: list[str]) -> None:
        self.file_name = file_name
        self.problems = problems
        shown = problems[: self.max_shown]
        more = len(problems) - len(shown)
        lines = [f"{file_name}: {len(problems)} problem(s); nothing was imported."]
        lines += [f"- {p}" for p in shown]
        if more > 0:
            lines.append(f"... and {more} more")
        super().__init__("\n".join(lines))


class AuthError(CRMError):
    """A login, user or permission problem."""


class NotAllowedError(AuthError):
    """The signed-in role may not see this view or take this action."""


class DeliveryError(CRMError):
    """A delivery destination (e-mail, webhook, folder) or a mail setting is not usable."""


class ScheduleError(CRMError):
    """A schedule (name, cron, time zone, target) is not valid or does not exist."""


class ChartImageError(CRMError):
    """A chart could not be drawn as an image (no Chromium or kaleido): reports go without it."""


class AlertError(CRMError):
    """An alert rule is invalid, unknown, or cannot be evaluated on the store's data."""
