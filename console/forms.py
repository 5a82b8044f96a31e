"""The agent form of the console: model fields plus the autonomy controls.

Validation reuses the services' validators so the console shows the API's messages; saving
goes through the services (admin.py), never by writing the autonomy columns directly.
"""

from django import forms

from agents import agent_settings
from agents.models import TradingAgent
from agents.services import approval, scheduling
from agents.strategies.base import ParamValidationError
from agents.strategies.registry import get_template, listed_templates, template_choices
from core.errors import ServiceError

SETTINGS_FIELDS = agent_settings.names()


def setting_form_field(setting):
    """A number setting's form field, from its declaration: bounds (also the HTML min and max),
    help, and the service's words for a bad value. Text and choice settings keep the fields the
    model gives them, whose length and choices come from the same declaration."""
    rule = f"must be {setting.words}"
    cls = forms.IntegerField if setting.kind == "int" else forms.FloatField
    return cls(min_value=setting.low, max_value=setting.high, help_text=setting.help,
               error_messages={"invalid": rule, "min_value": rule, "max_value": rule})


class AgentAdminForm(forms.ModelForm):
    strategy_template = forms.ChoiceField(choices=template_choices)
    params = forms.JSONField(
        required=False, initial=dict, help_text="Initial version's parameters (add only); defaults fill the rest."
    )
    learning_cron = forms.CharField(
        required=False, label="Learning schedule (cron)", help_text="Five fields: minute hour day month weekday."
    )
    learning_timezone = forms.CharField(required=False, initial="UTC", label="Schedule time zone")
    auto_learn = forms.BooleanField(required=False, label="Auto-learn on the schedule")
    auto_approve = forms.BooleanField(required=False, label="Auto-approve refinements")
    thresholds = forms.JSONField(required=False, label="Approval thresholds", help_text="Empty: the defaults.")
    continuous = forms.BooleanField(required=False, label="Continuous learning")

    class Meta:
        model = TradingAgent
        fields = ["owner", "instrument", "strategy_template", *SETTINGS_FIELDS, "related_instruments"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Built per form, so that the declaration in force is the one shown and enforced.
        for setting in agent_settings.AGENT_SETTINGS:
            if setting.kind in agent_settings.NUMERIC_KINDS and setting.name in self.fields:
                self.fields[setting.name] = setting_form_field(setting)
        agent = self.instance
        if not agent._state.adding:
            if "strategy_template" in self.fields:
                # An ensemble is created with its members (API or service), never here, but it is shown.
                self.fields["strategy_template"].choices = [(t.key, t.name) for t in listed_templates()]
            for name in ("owner", "instrument", "strategy_template", "params"):
                if name in self.fields:  # a view-only user's form has no editable field
                    self.fields[name].disabled = True
            if "params" in self.fields:
                self.fields["params"].help_text = "Change parameters through refinements or rollback."
            self.initial.update(
                params=agent.current_version.params if agent.current_version else {},
                learning_cron=agent.learning_schedule,
                learning_timezone=agent.schedule_timezone,
                auto_learn=agent.auto_learn_enabled,
                auto_approve=agent.auto_approve_enabled,
                thresholds=agent.approval_thresholds or None,
                continuous=agent.continuous_learning_enabled,
            )

    def _service_errors(self, exc, field):
        for key, message in exc.errors.items():
            self.add_error(field if key not in self.fields else key, f"{key}: {message}")

    def clean(self):
        data = super().clean()
        if self.instance._state.adding and data.get("strategy_template"):
            try:
                get_template(data["strategy_template"]).validate(data.get("params") or {})
            except ParamValidationError as exc:
                for name, message in exc.errors.items():
                    self.add_error("params", f"{name}: {message}")
        cron = (data.get("learning_cron") or "").strip()
        if cron:
            try:
                scheduling.parse_cron(cron, data.get("learning_timezone") or "UTC")
            except ServiceError as exc:
                for key, message in exc.errors.items():
                    self.add_error("learning_timezone" if key == "timezone" else "learning_cron", message)
        elif data.get("auto_learn"):
            self.add_error("learning_cron", "set a schedule first (a five-field cron)")
        thresholds = data.get("thresholds")
        if thresholds not in (None, "", {}):
            try:
                approval.validate_thresholds(thresholds)
            except ServiceError as exc:
                self._service_errors(exc, "thresholds")
        return data

    def autonomy_changes(self):
        """What the autonomy services must do for this save (admin.py performs it)."""
        data, agent = self.cleaned_data, self.instance
        cron = (data.get("learning_cron") or "").strip()
        tz = data.get("learning_timezone") or "UTC"
        thresholds = data.get("thresholds")
        schedule_changed = cron and (cron, tz) != (agent.learning_schedule, agent.schedule_timezone)
        return {
            "schedule": (cron, tz) if schedule_changed else None,
            "auto_learn": data.get("auto_learn"),
            "auto_approve": data.get("auto_approve"),
            "thresholds": thresholds if thresholds not in (None, "") and thresholds != agent.approval_thresholds
            else None,
            "continuous": data.get("continuous"),
        }
