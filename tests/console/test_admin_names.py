"""The admin's model names read as English: no "Deliverys"."""

import re

import pytest
from django.contrib import admin
from django.test import Client

from tests.console.helpers import staff_user

pytestmark = pytest.mark.django_db


def test_every_registered_model_has_a_proper_plural():
    for model in admin.site._registry:
        plural = str(model._meta.verbose_name_plural)
        assert not re.search(r"[^aeiou]ys$", plural), f"{model.__name__}: {plural!r}"


def test_the_admin_index_says_deliveries():
    client = Client()
    client.force_login(staff_user("operator"))
    html = client.get("/admin/").content.decode()
    assert "Deliveries" in html and "Deliverys" not in html
