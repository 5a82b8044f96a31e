"""Admin pages (read-only, owner-scoped), the Celery tasks called directly, concurrent ticks."""

import pytest
from django.contrib.auth.models import Permission

from graduation import tasks
from graduation.models import GraduationEvent, PaperAccount, PaperEquityPoint
from graduation.trading import accounts
from tests.factories import UserFactory
from tests.graduation.helpers import append_bars, paper_agent

pytestmark = pytest.mark.django_db


def test_tasks_run_one_tick_each(settings):
    agent = paper_agent({"max_drawdown": 1.0}, params={"fast": 3, "slow": 8})
    append_bars(agent.instrument, 5)
    assert tasks.paper_tick_task()["bars"] == 5
    settings.LAB_REPLAY_ENABLED = False
    assert tasks.replay_tick_task() == {}


def test_a_stale_copy_of_the_account_cannot_write_twice():
    agent = paper_agent({"max_drawdown": 1.0}, params={"fast": 3, "slow": 8})
    append_bars(agent.instrument, 5)
    related = ("agent__instrument", "version")
    first = PaperAccount.objects.select_related(*related).get(agent=agent)
    stale = PaperAccount.objects.select_related(*related).get(agent=agent)
    accounts.process_account(first)
    with pytest.raises(accounts.AccountBusy):
        accounts.process_account(stale)
    assert PaperEquityPoint.objects.filter(account=first).count() == 6


def test_admin_is_read_only_and_owner_scoped(client):
    mine = paper_agent(params={"fast": 3, "slow": 8})
    theirs = paper_agent()
    append_bars(mine.instrument, 30)
    tasks.paper_tick_task()
    staff = UserFactory(is_staff=True)
    for model in ("graduationevent", "paperaccount"):
        staff.user_permissions.add(Permission.objects.get(codename=f"view_{model}"))
    mine.owner = staff
    mine.save(update_fields=["owner"])
    client.force_login(staff)

    events = client.get("/admin/graduation/graduationevent/")
    assert events.status_code == 200
    assert mine.name in events.content.decode() and theirs.name not in events.content.decode()
    event = GraduationEvent.objects.get(agent=mine)
    assert client.get(f"/admin/graduation/graduationevent/{event.pk}/change/").status_code == 200
    account = PaperAccount.objects.get(agent=mine)
    page = client.get(f"/admin/graduation/paperaccount/{account.pk}/change/")
    assert page.status_code == 200 and "paper fills" in page.content.decode().lower()
    other = PaperAccount.objects.get(agent=theirs)
    # Another owner's account is outside the admin's queryset: Django redirects to the index, as for a missing row.
    refused = client.get(f"/admin/graduation/paperaccount/{other.pk}/change/")
    assert refused.status_code == 302 and refused["Location"] == "/admin/"
    assert client.get("/admin/graduation/paperaccount/add/").status_code == 403
