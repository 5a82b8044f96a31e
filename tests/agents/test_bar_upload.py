"""POST /api/instruments/{symbol}/bars: validation, owner and staff rules, the worker for large
files with progress by polling, the 413."""

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from agents.market import importer
from agents.market.models import BarImport, Instrument, PriceBar
from agents.market.uploads import run_bar_import
from agents.tasks import bar_import_task
from tests.agents.helpers import fred_series
from tests.factories import InstrumentFactory, UserFactory

pytestmark = pytest.mark.django_db

OHLC = b"timestamp,open,high,low,close,volume\n2020-01-02,10,11,9,10.5,100\n2020-01-03,10.5,12,10,11.5,200\n"


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def upload(name="bars.csv", body=OHLC):
    return SimpleUploadedFile(name, body, content_type="text/csv")


@pytest.fixture
def alice():
    return UserFactory(username="alice")


def test_a_small_file_is_imported_inline_and_the_uploader_owns_the_new_instrument(alice):
    response = api(alice).post("/api/instruments/MINE/bars", {"file": upload()}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json() | {"notes": None} == {"symbol": "MINE", "created": 2, "updated": 0, "unchanged": 0,
                                                 "total": 2, "notes": None, "data_version": 1}
    assert Instrument.objects.get(symbol="MINE").created_by == alice
    again = api(alice).post("/api/instruments/MINE/bars/", {"file": upload()}, format="multipart")
    assert again.status_code == 201 and again.json()["unchanged"] == 2


def test_a_close_only_fred_file_with_options(alice):
    body = ("\n".join(fred_series(40)) + "\n").encode()
    response = api(alice).post("/api/instruments/WTI/bars", {"file": upload(body=body), "close_only": "true",
                                                              "missing": "skip"}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["created"] == 36
    assert "4 rows with missing values skipped (lines 7, 16, 25, 34)" in response.json()["notes"]
    assert Instrument.objects.get(symbol="WTI").has_intrabar_range is False


def test_every_error_is_listed_and_nothing_is_written(alice):
    body = b"timestamp,open,high,low,close\n2020-01-02,10,9,11,10\n2020-01-03,x,1,1,1\n"
    response = api(alice).post("/api/instruments/BAD/bars", {"file": upload(body=body)}, format="multipart")
    assert response.status_code == 400
    assert response.json()["file"] == ["line 2: high (9) is below low (11)",
                                       "line 3: column 'open': 'x' is not a finite number"]
    assert not Instrument.objects.exists()


@pytest.mark.parametrize("data, field, rule", [
    ({"missing": "drop"}, "missing", "'drop' is not one of fail, skip, ffill"),
    ({"close_only": "maybe"}, "close_only", "must be a boolean"),
    ({"interval": "2d"}, "interval", "'2d' is not one of"),
    ({"bars_per_year": "-1"}, "bars_per_year", "must be a positive number"),
    ({"timezone": "Mars/Olympus"}, "timezone", "not a known IANA time zone"),
    ({"colour": "red"}, "colour", "unknown field"),
])
def test_bad_fields_are_named(alice, data, field, rule):
    response = api(alice).post("/api/instruments/X/bars", {"file": upload(), **data}, format="multipart")
    assert response.status_code == 400
    assert rule in str(response.json()[field])
    assert not PriceBar.objects.exists()


def test_a_missing_file_is_named(alice):
    response = api(alice).post("/api/instruments/X/bars", {"missing": "skip"}, format="multipart")
    assert response.status_code == 400 and "required" in response.json()["file"][0]


def test_dry_run_previews_without_writing(alice):
    response = api(alice).post("/api/instruments/X/bars", {"file": upload(), "dry_run": "1"}, format="multipart")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] and body["bar_count"] == 2 and body["bars"][0]["close"] == 10.5 and body["errors"] == []
    assert not Instrument.objects.exists()


def test_owner_and_permission_rules(alice):
    bob = UserFactory(username="bob")
    staff = UserFactory(username="ops", is_staff=True)
    editor = UserFactory(username="editor")
    editor.user_permissions.add(Permission.objects.get(codename="change_instrument"))
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    InstrumentFactory(symbol="SPX")  # bundled-like: nobody created it by an upload
    assert api(alice).post("/api/instruments/MINE/bars", {"file": upload()}, format="multipart").status_code == 201
    refused = api(bob).post("/api/instruments/MINE/bars", {"file": upload()}, format="multipart")
    assert refused.status_code == 403
    assert "only the user who created it by an upload, or one with the agents.change_instrument permission" in (
        refused.json()["symbol"][0])
    assert api(bob).post("/api/instruments/SPX/bars", {"file": upload()}, format="multipart").status_code == 403
    # Staff rank (console access) is no right over shared instruments; the permission is.
    assert api(staff).post("/api/instruments/SPX/bars", {"file": upload()}, format="multipart").status_code == 403
    assert api(editor).post("/api/instruments/SPX/bars", {"file": upload()}, format="multipart").status_code == 201
    assert api(root).post("/api/instruments/SPX/bars", {"file": upload()}, format="multipart").status_code == 201
    assert api(root).post("/api/instruments/MINE/bars", {"file": upload()}, format="multipart").status_code == 201
    assert APIClient().post("/api/instruments/X/bars", {"file": upload()}, format="multipart").status_code == 403


def test_a_large_file_goes_to_a_worker_with_progress_by_polling(alice, settings, tmp_path, monkeypatch):
    settings.LAB_IMPORT_INLINE_MAX_BYTES = 100
    settings.VAR_DIR = tmp_path
    monkeypatch.setattr("agents.market.csvparse.READ_PROGRESS_ROWS", 100)  # 500 rows: 5 steps
    body = ("\n".join(fred_series(500)) + "\n").encode()
    queued = []
    monkeypatch.setattr("config.task_messages.send_on_commit", lambda name, *args: queued.append((name, *args)))
    response = api(alice).post("/api/instruments/WTI/bars", {"file": upload(body=body), "close_only": "1",
                                                              "missing": "ffill"}, format="multipart")
    assert response.status_code == 202, response.json()
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued" and queued == [(bar_import_task.name, job_id)]
    assert response["Location"].endswith(f"/api/instruments/WTI/bars/imports/{job_id}")
    saved = Path(BarImport.objects.get().path)
    assert saved.read_bytes() == body and not PriceBar.objects.exists()

    seen = []
    real_parse = importer.parse_bars

    def spying(path, options, progress=None):
        def record(done, total):
            progress(done, total)
            job = BarImport.objects.get(pk=job_id)
            seen.append((job.status, job.phase, job.done, job.total))

        return real_parse(path, options, progress=record)

    monkeypatch.setattr(importer, "parse_bars", spying)
    bar_import_task(job_id)
    assert seen == [("running", "reading", n, 500) for n in (100, 200, 300, 400)] + [
        ("running", "writing", 500, 500)] * 2

    status = api(alice).get(f"/api/instruments/WTI/bars/imports/{job_id}").json()
    assert status["status"] == "succeeded" and status["done"] == status["total"] == 500
    assert status["result"]["created"] == 500
    assert any(n.startswith("55 rows with missing values filled") for n in status["result"]["notes"])
    assert not saved.exists()
    assert bar_import_task(job_id) is None  # a redelivery does nothing
    assert api(UserFactory(username="bob")).get(f"/api/instruments/WTI/bars/imports/{job_id}").status_code == 404


def test_a_failed_worker_import_lists_every_error(alice, settings, tmp_path, monkeypatch):
    settings.LAB_IMPORT_INLINE_MAX_BYTES = 10
    settings.VAR_DIR = tmp_path
    monkeypatch.setattr("config.task_messages.send_on_commit", lambda *args: None)
    body = b"timestamp,open,high,low,close\n2020-01-02,10,9,11,10\n"
    job_id = api(alice).post("/api/instruments/BAD/bars", {"file": upload(body=body)}, format="multipart").json()["id"]
    job = run_bar_import(job_id)
    assert job.status == "failed" and job.errors == ["line 2: high (9) is below low (11)"]
    assert not Instrument.objects.exists()


def test_a_body_over_the_upload_limit_is_a_413(alice, settings):
    settings.LAB_MAX_UPLOAD_BYTES = 500
    client = Client()
    client.force_login(alice)
    response = client.post("/api/instruments/X/bars", {"file": io.BytesIO(b"x" * 1000)})
    assert response.status_code == 413
    assert "LAB_MAX_UPLOAD_BYTES" in response.json()["detail"]
