"""Operator console for alerts. Actions call the alerts services.

Only AgentAlert is registered here; the notification side registers its models in
alerts/admin_channels.py, imported at the end.
"""

import importlib
import importlib.util

from django.contrib import admin, messages

from agents.admin.common import OwnedAdminMixin
from alerts import services
from alerts.models import AgentAlert


@admin.register(AgentAlert)
class AgentAlertAdmin(OwnedAdminMixin, admin.ModelAdmin):
    list_display = [
        "severity", "alert_type", "agent", "short_message", "occurrence_count", "acknowledged",
        "last_seen_at", "created_at",
    ]
    list_display_links = ["short_message"]
    list_filter = ["acknowledged", "severity", "alert_type", "agent__status", "last_seen_at"]
    search_fields = ["message", "fingerprint", "agent__name", "agent__owner__username"]
    list_select_related = ["agent", "acknowledged_by"]
    date_hierarchy = "last_seen_at"
    ordering = ["-last_seen_at", "-id"]
    actions = ["acknowledge_selected", "delete_selected"]
    readonly_fields = [
        "agent", "alert_type", "severity", "message", "details", "fingerprint", "occurrence_count",
        "created_at", "last_seen_at", "last_notified_at", "acknowledged", "acknowledged_by", "acknowledged_at",
    ]

    @admin.display(description="message")
    def short_message(self, obj):
        return obj.message if len(obj.message) <= 100 else f"{obj.message[:99]}…"

    def has_add_permission(self, request):
        return False  # alerts are raised by the lab, not typed in

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Every field is read-only: the page is a view; acknowledging goes through the action.
        extra_context = {
            **(extra_context or {}),
            "show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        pass  # alerts change only through alerts.services (raise, acknowledge, delete)

    @admin.action(description="Acknowledge selected alerts", permissions=["change"])
    def acknowledge_selected(self, request, queryset):
        count = services.alerts_acknowledge(queryset, user=request.user)
        self.message_user(request, f"{count} alert{'s' if count != 1 else ''} acknowledged.", messages.SUCCESS)

    # The built-in "delete selected" (with its confirmation page) and the delete button call these.
    def delete_model(self, request, obj):
        services.alert_delete(obj, user=request.user)

    def delete_queryset(self, request, queryset):
        services.alerts_delete(queryset, user=request.user)


# The notification side's admin, once written; a broken import inside it must still fail loudly.
if importlib.util.find_spec("alerts.admin_channels") is not None:
    importlib.import_module("alerts.admin_channels")
