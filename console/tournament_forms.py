"""The console's tournament forms: the add page and the entrant picker of the tournament page.

The add form creates the tournament through tournament_create while it validates, so the
service's refusals (the common window, the entrants, the cron) appear on the field they name; the
admin's add view runs inside one transaction, so nothing stays written if a later step fails.
"""

from django import forms

from agents.models import TradingAgent
from agents.selectors import agents_visible_to
from core.errors import ServiceError
from tournaments.models import Tournament
from tournaments.services.tournaments import tournament_create

# The service's error keys -> this form's fields.
FIELD_OF = {"agents": "agents", "agent_ids": "agents", "cron": "round_schedule", "timezone": "schedule_timezone"}


def agent_choices(user, exclude_tournament=None):
    agents = agents_visible_to(user).select_related("instrument").order_by("name")
    if exclude_tournament is not None:
        agents = agents.exclude(tournament_entries__tournament=exclude_tournament)
    return agents


class EntrantChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} ({obj.instrument.symbol}, {obj.strategy_template})"


class TournamentAddForm(forms.ModelForm):
    """Set `user` on the class (TournamentAdmin.get_form) before use: the entrants are its agents."""

    user = None
    agents = EntrantChoiceField(queryset=TradingAgent.objects.none(), widget=forms.CheckboxSelectMultiple,
                                help_text="2 to 50 agents; their sealed test windows must share the common window.")
    window_start = forms.DateTimeField(required=False, help_text="Empty: the latest start of the entrants' "
                                                                  "sealed windows. With a UTC offset.")
    window_end = forms.DateTimeField(required=False, help_text="Empty: the earliest end of their sealed windows.")

    class Meta:
        model = Tournament
        fields = ["name", "description", "round_schedule", "schedule_timezone"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agents"].queryset = agent_choices(self.user)

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        data = self.cleaned_data
        try:
            self.instance = tournament_create(
                self.user, name=data["name"], agent_ids=[a.pk for a in data["agents"]],
                description=data.get("description", ""), window_start=data.get("window_start"),
                window_end=data.get("window_end"), round_schedule=data.get("round_schedule", ""),
                schedule_timezone=data.get("schedule_timezone") or "UTC")
        except ServiceError as exc:
            for key, message in exc.errors.items():
                field = FIELD_OF.get(key, key)
                self.add_error(field if field in self.fields else None, message)


class EntrantAddForm(forms.Form):
    agents = EntrantChoiceField(queryset=TradingAgent.objects.none(), label="Add entrants")

    def __init__(self, *args, user, tournament, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agents"].queryset = agent_choices(user, exclude_tournament=tournament)
