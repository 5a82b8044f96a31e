"""The lab's shared bottom layer: service errors and the API plumbing every app's API uses
(JSON parser, pagination, exception handler, strict input fields, filter backends).

Any app may import core; core imports no app (tests/test_dependencies.py). It is a plain package,
not a Django app: it has no models, templates or signals.
"""
