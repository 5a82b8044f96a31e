"""The API's JSON parser: DRF's, with limits that name the offending field.

- Nesting: Python's json module recurses as deep as the document goes; about a thousand levels
  raise RecursionError (a 500 under DRF's parser) and a few hundred pass on to code that may
  recurse again. No lab input nests deeper than a few levels (params, thresholds, criteria and
  channel settings are flat objects), so a document deeper than MAX_DEPTH is a 400.
- Non-finite numbers: the NaN / Infinity tokens (not JSON, but Python emits them) and numbers
  beyond a float's range (1e400 parses as infinity) are refused with a 400 naming where they
  are, e.g. {"params.fast": ["must be a finite number ..."]}, before any view sees them.
- Huge integers: more than MAX_INT_DIGITS digits is refused by name (Python would otherwise stop
  at 4300 digits with an error naming nothing); smaller ones reach the validators' bounds.

The body size is bounded before any parser runs (config.middleware.BodySizeLimitMiddleware).
"""

import codecs
import json
import math

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser, get_encoding

MAX_DEPTH = 32
# A bigint has 19 digits; anything much longer is never a meaningful lab value.
MAX_INT_DIGITS = 100
NON_FINITE = "must be a finite number (NaN, Infinity and numbers beyond ±1.8e308 are refused)"
TOO_LONG = f"must be a number of at most {MAX_INT_DIGITS} digits"


class _Refused:
    """A parsed value the parser refuses once it knows where it sits in the document."""

    def __init__(self, rule):
        self.rule = rule


def _parse_int(text):
    return _Refused(TOO_LONG) if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def _parse_constant(_token):
    return _Refused(NON_FINITE)


def problems(data, max_depth=MAX_DEPTH):
    """(too deep, {dotted path: rule}) for a parsed document; iterative, so any depth is safe."""
    stack = [(data, (), 1)]
    found = {}
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict):
            children = item.items()
        elif isinstance(item, list):
            children = enumerate(item)
        else:
            if isinstance(item, _Refused):
                found[".".join(map(str, path)) or "non_field_errors"] = item.rule
            elif isinstance(item, float) and not math.isfinite(item):
                found[".".join(map(str, path)) or "non_field_errors"] = NON_FINITE
            continue
        if depth > max_depth:
            return True, found
        stack.extend((child, (*path, key), depth + 1) for key, child in children)
    return False, found


class LabJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        too_deep = ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        try:
            data = json.load(codecs.getreader(encoding)(stream), parse_constant=_parse_constant,
                             parse_int=_parse_int)
        except RecursionError:
            raise too_deep from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}")
        deep, found = problems(data)
        if deep:
            raise too_deep
        if found:
            raise ValidationError({path: [rule] for path, rule in sorted(found.items())})
        return data
