"""Alert routes under /api/, included BEFORE agents.api.urls; every path works with and without
a trailing slash. The agent id is a UUID, so `learning-agents/alerts` never reads as an agent."""

from django.urls import re_path

from alerts.api import views

AGENT = r"(?P<agent_id>[0-9a-fA-F-]{36})"
ALERT = r"(?P<alert_id>[0-9]+)"

urlpatterns = [
    re_path(r"^learning-agents/alerts/?$", views.AlertListView.as_view(), name="alert-list"),
    re_path(r"^learning-agents/alerts/acknowledge/?$", views.BulkAcknowledgeView.as_view(),
            name="alert-bulk-acknowledge"),
    re_path(rf"^learning-agents/{AGENT}/alerts/?$", views.AgentAlertListView.as_view(), name="agent-alert-list"),
    re_path(rf"^learning-agents/{AGENT}/alerts/{ALERT}/?$", views.AgentAlertDetailView.as_view(),
            name="agent-alert-detail"),
    re_path(rf"^learning-agents/{AGENT}/alerts/{ALERT}/acknowledge/?$", views.AgentAlertAcknowledgeView.as_view(),
            name="agent-alert-acknowledge"),
]
