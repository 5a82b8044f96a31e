"""Helpers shared by the agents' admin classes."""

from django.contrib import messages

from agents.selectors import owned_rows
from core.errors import ServiceError

MAX_ROW_MESSAGES = 25


def fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


class OwnedAdminMixin:
    """For every ModelAdmin of owned rows: the rows agents.selectors lets the user see.
    `owner_path` leads from a row to its owning user."""

    owner_path = "agent__owner"

    def get_queryset(self, request):
        return owned_rows(super().get_queryset(request), request.user, self.owner_path)


def report(modeladmin, request, done, failures):
    """One message per row: what was done, or why not (capped, with the rest counted)."""
    for label, message in done[:MAX_ROW_MESSAGES]:
        modeladmin.message_user(request, f"{label}: {message}", messages.SUCCESS)
    for label, reason in failures[:MAX_ROW_MESSAGES]:
        modeladmin.message_user(request, f"{label}: {reason}", messages.ERROR)
    hidden_done, hidden_failed = max(0, len(done) - MAX_ROW_MESSAGES), max(0, len(failures) - MAX_ROW_MESSAGES)
    if hidden_done or hidden_failed:
        modeladmin.message_user(
            request, f"... and {hidden_done} more done, {hidden_failed} more refused.", messages.WARNING
        )


def run_per_row(modeladmin, request, rows, service, label=str):
    """Call `service(row)` for each row; it returns the success text or raises ServiceError."""
    done, failures = [], []
    for row in rows:
        try:
            done.append((label(row), service(row)))
        except ServiceError as exc:
            failures.append((label(row), str(exc)))
    report(modeladmin, request, done, failures)
