"""Stricter request typing than DRF's defaults, shared by the API's input serializers.

- Unknown names in a JSON body are refused by name (DRF drops them silently, so a misspelt
  setting or a {"status": ...} would be ignored without a word). Form bodies are left alone:
  the browsable API adds fields of its own (the CSRF token).
- A boolean is never a number (DRF's FloatField turns true into 1.0). DRF's unambiguous form-style
  coercions stay ("12" -> 12, "true" -> true) so the browsable API's forms keep working; the
  JSON-only inputs (thresholds, criteria, switches, params) are typed strictly by their services.
"""

from rest_framework import serializers


class RejectUnknownFieldsMixin:
    """For a Serializer: a JSON object's names must all be fields (or read-only names, refused apart)."""

    read_only_names = ()

    def to_internal_value(self, data):
        if isinstance(data, dict) and not hasattr(data, "getlist"):
            read_only = set(self.read_only_names)
            errors = {str(k): "is read-only: use the dedicated endpoint" for k in data if k in read_only}
            errors.update({
                str(k): f"unknown field; allowed: {', '.join(self.fields)}"
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
