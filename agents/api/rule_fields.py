"""OpenAPI types of a gate's rules, derived from their one declaration (agents.evaluation.rules).

The service validates (and names every error); these serializers only type the schema and shape
the answers, so their bounds come from the same Rule objects and cannot drift.
"""

import math

from rest_framework import serializers


def _field(rule, *, required):
    help_text = f"{rule.meaning}; {rule.words or 'true or false'}"
    if rule.evidence != "value" and rule.op != "flag":
        help_text += f"; judged on: {rule.evidence} ({rule.metric} {rule.op} this)"
    if rule.nullable:
        help_text += "; null turns it off"
    common = {"required": required, "help_text": help_text}
    if rule.kind == "bool":
        return serializers.BooleanField(**common)
    bounds = {}
    if not math.isinf(rule.low):
        bounds["min_value"] = rule.low
    if not math.isinf(rule.high):
        bounds["max_value"] = rule.high
    if rule.nullable:
        common["allow_null"] = True
    cls = serializers.IntegerField if rule.kind == "int" else serializers.FloatField
    return cls(**common, **bounds)


def rules_serializer(name, rules, *, required=(), doc=""):
    """A Serializer class with one typed field per rule."""
    attrs = {rule.name: _field(rule, required=rule.name in required) for rule in rules}
    attrs["__doc__"] = doc
    return type(name, (serializers.Serializer,), attrs)


class RuleResultSerializer(serializers.Serializer):
    """One judged rule (agents.evaluation.rules), as every gate reports it."""

    criterion = serializers.CharField()
    required = serializers.JSONField(help_text="The value required (a number, or a description).")
    actual = serializers.JSONField(
        allow_null=True,
        help_text="Measured value; for fold rules, the value the min_fold_pass-th best fold reaches.",
    )
    passed = serializers.BooleanField()
    evidence = serializers.CharField(
        required=False, help_text="What it read: folds, folds+test, test (sealed window), value, paper."
    )
    comparison = serializers.CharField(required=False)
    folds_passed = serializers.IntegerField(required=False)
    folds = serializers.IntegerField(required=False)
    folds_needed = serializers.IntegerField(required=False)
    fold_values = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)
    test_value = serializers.FloatField(required=False, allow_null=True, help_text="On the sealed test window.")
    metric = serializers.CharField(required=False)
    note = serializers.CharField(required=False)
