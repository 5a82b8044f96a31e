"""Graduation routes under /api/, included BEFORE agents.api.urls; every path works with and
without a trailing slash. The agent id is a UUID."""

from django.urls import re_path

from graduation.api import views

AGENT = r"(?P<agent_id>[0-9a-fA-F-]{36})"

urlpatterns = [
    re_path(rf"^learning-agents/{AGENT}/graduation/eligibility/?$", views.EligibilityView.as_view(),
            name="graduation-eligibility"),
    re_path(rf"^learning-agents/{AGENT}/graduate/?$", views.GraduateView.as_view(), name="graduation-graduate"),
    re_path(rf"^learning-agents/{AGENT}/demote/?$", views.DemoteView.as_view(), name="graduation-demote"),
    re_path(rf"^learning-agents/{AGENT}/graduation/history/?$", views.HistoryView.as_view(),
            name="graduation-history"),
    re_path(rf"^learning-agents/{AGENT}/graduation/version-at/?$", views.VersionAtView.as_view(),
            name="graduation-version-at"),
    re_path(rf"^learning-agents/{AGENT}/graduation/criteria/?$", views.CriteriaView.as_view(),
            name="graduation-criteria"),
    re_path(rf"^learning-agents/{AGENT}/graduation/settings/?$", views.SwitchesView.as_view(),
            name="graduation-settings"),
    re_path(rf"^learning-agents/{AGENT}/paper/?$", views.PaperView.as_view(), name="graduation-paper"),
    re_path(rf"^learning-agents/{AGENT}/paper/accounts/?$", views.PaperAccountsView.as_view(),
            name="graduation-paper-accounts"),
    re_path(rf"^learning-agents/{AGENT}/challenger/?$", views.ChallengerView.as_view(), name="graduation-challenger"),
    re_path(rf"^learning-agents/{AGENT}/challenger/promote/?$", views.ChallengerPromoteView.as_view(),
            name="graduation-challenger-promote"),
    re_path(rf"^learning-agents/{AGENT}/challenger/dismiss/?$", views.ChallengerDismissView.as_view(),
            name="graduation-challenger-dismiss"),
]
