import pytest


@pytest.fixture(autouse=True)
def _no_notifications(monkeypatch):
    # Alerts raised here are checked as rows; their channel fan-out is alerts' own business.
    calls = []
    monkeypatch.setattr("alerts.notify.notify_alert", calls.append)
    return calls
