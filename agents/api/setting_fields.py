"""The API's input fields of an agent's settings, derived from their one declaration
(agents.agent_settings) each time a serializer is built.

The fields type, bound and document each setting (the OpenAPI schema shows its minimum, maximum,
choices and help); a bad value is refused with the declaration's words, the same the service
and the console say, keyed by the setting's name.
"""

from rest_framework import serializers

from agents import agent_settings
from core.strict import StrictFloatField


def setting_field(setting, *, required):
    rule = f"must be {setting.words}"
    common = {"required": required, "help_text": setting.help}
    if setting.kind in agent_settings.NUMERIC_KINDS:
        cls = serializers.IntegerField if setting.kind == "int" else StrictFloatField
        messages = {"invalid": rule, "min_value": rule, "max_value": rule, "max_string_length": rule,
                    "overflow": rule}
        return cls(min_value=setting.low, max_value=setting.high, error_messages=messages, **common)
    if setting.kind == "bool":
        return StrictBooleanField(error_messages={"invalid": rule}, **common)
    if setting.kind == "text":
        return serializers.CharField(
            max_length=setting.max_length, allow_blank=setting.default is not None,
            error_messages={"max_length": f"must be at most {setting.max_length} characters",
                            "invalid": "must be a string", "blank": "must not be blank"},
            **common,
        )
    return serializers.ChoiceField(choices=setting.choices.choices, error_messages={"invalid_choice": rule},
                                   **common)


class StrictBooleanField(serializers.BooleanField):
    """true or false only: DRF's own field also takes "yes", "on", 1 and "0", which a JSON client
    sending the wrong type should hear about instead."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)


class DeclaredSettingsMixin:
    """For a Serializer: one field per declared agent setting (``required_settings`` required)."""

    required_settings = ()

    def get_fields(self):
        fields = super().get_fields()
        for setting in agent_settings.AGENT_SETTINGS:
            fields[setting.name] = setting_field(setting, required=setting.name in self.required_settings)
        return fields
