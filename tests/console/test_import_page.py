"""The console's Import bars page on an instrument: preview with the first rows and every error,
then the import, inline or by a worker."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from agents.market.models import BarImport, PriceBar
from agents.tasks import bar_import_task
from tests.agents.helpers import fred_series
from tests.console.helpers import staff_user
from tests.factories import InstrumentFactory

pytestmark = pytest.mark.django_db

OHLC = b"timestamp,open,high,low,close\n2030-01-02,10,11,9,10.5\n2030-01-03,10.5,12,10,11.5\n"


def console(user):
    client = Client()
    client.force_login(user)
    return client


def url(instrument):
    return f"/admin/agents/instrument/{instrument.pk}/import-bars/"


def test_the_instrument_page_links_to_import_bars(operator, instrument):
    page = console(operator).get(f"/admin/agents/instrument/{instrument.pk}/change/")
    assert url(instrument).encode() in page.content


def test_preview_lists_the_first_rows_then_import_writes_them(operator, instrument, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    client = console(operator)
    before = PriceBar.objects.filter(instrument=instrument).count()
    page = client.post(url(instrument), {"file": SimpleUploadedFile("new.csv", OHLC), "action": "preview",
                                         "missing": "fail", "non_positive": "fail"})
    html = page.content.decode()
    assert page.status_code == 200 and "Preview: 2 bars from 2 rows" in html
    assert "2030-01-02 00:00" in html and "Import 2 bars" in html
    assert PriceBar.objects.filter(instrument=instrument).count() == before
    token = page.context["token"]
    done = client.post(url(instrument), {"token": token, "action": "import", "missing": "fail",
                                         "non_positive": "fail"}, follow=True)
    assert "CONSOLE: 2 bars read: 2 created, 0 updated, 0 unchanged" in done.content.decode()
    assert PriceBar.objects.filter(instrument=instrument).count() == before + 2
    assert not list(tmp_path.glob("imports/preview-*"))


def test_every_error_is_listed_and_there_is_no_import_button(operator, instrument, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    body = b"timestamp,open,high,low,close\n2030-01-02,10,9,11,10\n2030-01-03,.,1,1,1\n"
    page = console(operator).post(url(instrument), {"file": SimpleUploadedFile("bad.csv", body),
                                                    "action": "preview", "missing": "fail"})
    html = page.content.decode()
    assert "The file cannot be imported: nothing will be written" in html
    assert "line 2: high (9) is below low (11)" in html
    assert "line 3: column &#x27;open&#x27;: missing value" in html
    assert "--missing skip" in html
    assert "Import " not in html.split('class="submit-row"')[1].split("</div>")[0]


def test_a_bad_option_is_named_next_to_its_field(operator, instrument):
    page = console(operator).post(url(instrument), {"file": SimpleUploadedFile("a.csv", OHLC), "missing": "drop"})
    assert "&#x27;drop&#x27; is not one of fail, skip, ffill" in page.content.decode()


def test_a_large_file_is_queued_and_the_page_polls_its_progress(operator, settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    settings.LAB_IMPORT_INLINE_MAX_BYTES = 100
    monkeypatch.setattr("config.task_messages.send_on_commit", lambda *args: None)
    wti = InstrumentFactory(symbol="WTI")
    body = ("\n".join(fred_series(300)) + "\n").encode()
    client = console(operator)
    preview = client.post(url(wti), {"file": SimpleUploadedFile("wti.csv", body), "close_only": "true",
                                     "missing": "skip", "action": "preview"})
    assert "rows with missing values skipped" in preview.content.decode()
    page = client.post(url(wti), {"token": preview.context["token"], "close_only": "true", "missing": "skip",
                                  "action": "import"})
    job = BarImport.objects.get()
    assert f'data-url="/api/instruments/WTI/bars/imports/{job.pk}"' in page.content.decode()
    bar_import_task(str(job.pk))
    assert client.get(f"/api/instruments/WTI/bars/imports/{job.pk}").json()["status"] == "succeeded"


def test_view_only_staff_cannot_import(instrument):
    viewer = staff_user("viewer", view_only=True)
    assert console(viewer).get(url(instrument)).status_code == 403
