"""Admin for notification channels and their deliveries (imported by alerts/admin.py).

Scoped by owner like every admin page (agents.selectors): a user sees and edits only their own
channels and their deliveries; a superuser sees all.
The webhook secret is write-only: never displayed; typing a new one replaces it, ticking
"rotate" (or saving a webhook without one) generates one that is shown once in a message.
Saving goes through alerts.channel_service, so the admin applies the API's rules (SSRF
check of the URL, email address, known alert types, rate limit bounds).
"""

from django import forms
from django.contrib import admin, messages

from agents.admin.common import OwnedAdminMixin
from agents.selectors import sees_everything
from alerts import channel_service
from alerts.models import AlertType, Delivery, NotificationChannel
from core.errors import ServiceError

SERVICE_FIELDS = ("name", "kind", "target", "min_severity", "alert_types", "enabled", "rate_limit_per_minute")


class ChannelForm(forms.ModelForm):
    alert_types = forms.MultipleChoiceField(
        choices=AlertType.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type.",
    )
    new_secret = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        label="New secret", help_text="Webhooks only. Leave empty to keep the current secret.",
    )
    rotate_secret = forms.BooleanField(
        required=False, label="Generate a new secret", help_text="Shown once after saving.",
    )

    class Meta:
        model = NotificationChannel
        fields = ["owner", "name", "kind", "target", "min_severity", "alert_types", "enabled", "rate_limit_per_minute"]

    request = None  # set by NotificationChannelAdmin.get_form

    def service_data(self):
        data = {f: self.cleaned_data.get(f) for f in SERVICE_FIELDS if f in self.cleaned_data}
        data["target"] = data.get("target") or ""
        data["alert_types"] = list(data.get("alert_types") or [])
        if self.cleaned_data.get("rotate_secret"):
            data["secret"] = ""
        elif self.cleaned_data.get("new_secret"):
            data["secret"] = self.cleaned_data["new_secret"]
        return data

    def owner(self):
        if "owner" in self.cleaned_data and self.cleaned_data["owner"] is not None:
            return self.cleaned_data["owner"]
        if self.instance.pk:
            return self.instance.owner
        return self.request.user

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        instance = self.instance
        current = {"secret": instance.secret if instance.pk else ""}
        try:
            channel_service.validate_for(
                {**channel_service.defaults(), **current, **self.service_data()},
                owner_id=self.owner().pk, exclude_pk=instance.pk,
            )
        except ServiceError as exc:
            for field, rule in exc.errors.items():
                target = "new_secret" if field == "secret" else field
                self.add_error(target if target in self.fields else None, rule)
        return cleaned


@admin.register(NotificationChannel)
class NotificationChannelAdmin(OwnedAdminMixin, admin.ModelAdmin):
    owner_path = "owner"
    form = ChannelForm
    list_display = ["name", "owner", "kind", "target", "min_severity", "enabled", "rate_limit_per_minute",
                    "has_secret", "created_at"]
    list_filter = ["kind", "enabled", "min_severity"]
    search_fields = ["name", "target", "owner__username"]
    list_select_related = ["owner"]
    actions = ["send_test_notification"]

    @admin.display(boolean=True, description="secret set")
    def has_secret(self, obj):
        return bool(obj.secret)

    def get_fields(self, request, obj=None):
        fields = ["owner", "name", "kind", "target", "min_severity", "alert_types", "enabled",
                  "rate_limit_per_minute", "new_secret", "rotate_secret"]
        return fields if sees_everything(request.user) else fields[1:]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def save_model(self, request, obj, form, change):
        data = form.service_data()
        if change:
            _channel, new_secret = channel_service.channel_update(obj, data=data)
        else:
            _channel, new_secret = channel_service.channel_create(owner=form.owner(), data=data, instance=obj)
        if new_secret:
            self.message_user(
                request,
                f"Webhook secret of '{obj.name}': {new_secret} - copy it now, it will not be shown again.",
                messages.WARNING,
            )

    def delete_model(self, request, obj):
        channel_service.channel_delete(obj)

    @admin.action(description="Send a test notification")
    def send_test_notification(self, request, queryset):
        for channel in queryset:
            outcome = channel_service.channel_send_test(channel, user=request.user)
            if outcome.ok:
                code = f" (HTTP {outcome.response_code})" if outcome.response_code else ""
                self.message_user(request, f"{channel.name}: test notification delivered{code}.", messages.SUCCESS)
            else:
                self.message_user(request, f"{channel.name}: test notification failed: {outcome.error}",
                                  messages.ERROR)


@admin.register(Delivery)
class DeliveryAdmin(OwnedAdminMixin, admin.ModelAdmin):
    """Read-only: deliveries are written by the notification code only."""

    list_display = ["id", "alert", "channel", "sequence", "status", "attempts", "response_code", "created_at",
                    "delivered_at"]
    list_display_links = ["id"]
    list_filter = ["status", "channel__kind", "created_at"]
    search_fields = ["alert__message", "channel__name", "last_error"]
    list_select_related = ["alert", "channel"]
    readonly_fields = ["alert", "channel", "sequence", "status", "attempts", "response_code", "last_error",
                       "created_at", "updated_at", "delivered_at"]
    fields = readonly_fields
    show_full_result_count = False

    owner_path = "channel__owner"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
