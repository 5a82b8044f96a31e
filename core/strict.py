"""Stricter request typing than DRF's defaults, shared by the API's input serializers.

- Unknown names in a body are refused by name, whatever the parser (DRF drops them silently, so a
  misspelt setting or a {"status": ...} would be ignored without a word). In a form body the names
  the browsable API adds itself (the CSRF token, its content override fields) are not counted.
- A boolean is never a number (DRF's FloatField turns true into 1.0). DRF's unambiguous form-style
  coercions stay ("12" -> 12, "true" -> true) so the browsable API's forms keep working; the
  JSON-only inputs (thresholds, criteria, switches, params) are typed strictly by their services.
"""

from rest_framework import serializers

# Names a form body carries that are no field of any input: Django's CSRF token and the
# browsable API's raw-content override.
FORM_CONTROL_NAMES = frozenset({"csrfmiddlewaretoken", "_content", "_content_type"})


def without_form_controls(data):
    """A form body (QueryDict) without FORM_CONTROL_NAMES; any other body as it is."""
    if not hasattr(data, "getlist"):
        return data
    data = data.copy()
    for name in FORM_CONTROL_NAMES:
        data.pop(name, None)
    return data


class RejectUnknownFieldsMixin:
    """For a Serializer: a JSON object's names must all be fields (or read-only names, refused apart)."""

    read_only_names = ()

    def to_internal_value(self, data):
        if isinstance(data, dict):
            data = without_form_controls(data)
            read_only = set(self.read_only_names)
            # Lists, as every other error of the API: {"field": ["rule"]}.
            errors = {str(k): ["is read-only: use the dedicated endpoint"] for k in data if k in read_only}
            errors.update({
                str(k): [f"unknown field; allowed: {', '.join(self.fields)}"]
                for k in data if k not in self.fields and k not in read_only
            })
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class JSONBooleanField(serializers.BooleanField):
    """Only a JSON true or false: for confirmations, where "yes", 1 or "on" must not count."""

    default_error_messages = {"invalid": "must be a JSON boolean (true or false), not {input!r}"}

    def to_internal_value(self, data):
        if data is True or data is False:
            return data
        self.fail("invalid", input=data)
