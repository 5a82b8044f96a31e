"""Fixtures of every security test: fast password hashing, and alerts kept as rows."""

import pytest


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The factories' users have a password; PBKDF2 would take most of each test's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_notifications(notified):
    # Alerts raised here are checked as rows or answers; their channel fan-out is alerts' own business.
    return notified
