"""The API's JSON parser: DRF's own, plus a nesting limit.

DRF's JSONParser lets Python's json module recurse as deep as the document goes: about a
thousand levels raise RecursionError (a 500), and a few hundred pass and reach code that may
recurse again. No lab input nests deeper than a few levels (params, thresholds, criteria and
channel settings are flat objects), so a document deeper than MAX_DEPTH is a 400. NaN and
Infinity tokens are already refused by DRF (STRICT_JSON). The body size is bounded before
any parser runs (config.middleware.BodySizeLimitMiddleware).
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


def nested_deeper_than(value, limit):
    """True when `value` has containers nested more than `limit` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class LabJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        too_deep = ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep from None
        if nested_deeper_than(data, MAX_DEPTH):
            raise too_deep
        return data
