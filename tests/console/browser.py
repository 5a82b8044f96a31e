"""What every browser test module shares: skipping, saying why, where there is no Chromium or no
Playwright (a module importing this is skipped whole), ``expect``, and logging in.

Import it first among the test module's imports of Playwright things:
``from tests.console.browser import expect, log_in``.
"""

import pytest

from tests.console.helpers import CHROMIUM, PASSWORD

if not CHROMIUM:
    pytest.skip("browser tests skipped: no Chromium (install Debian's chromium package for /usr/bin/chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests skipped: playwright is not installed")
expect = sync_api.expect


def log_in(page, username, *, next_url="/admin/", landed="#lab-dashboard"):
    page.goto(f"/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator(landed)).to_be_visible()
