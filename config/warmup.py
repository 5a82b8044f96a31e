"""Work a process does once at start so that no user's first request pays for it.

`config` imports no app: an app registers what it needs warmed from its AppConfig.ready()
(agents registers the compiled backtest kernel), and the web and worker entry points call
`warm_up()` after Django is set up. It first sets the heap policy (``LAB_HEAP_TOP_PAD_MB``,
:mod:`config.heap`).
"""

import logging
from collections.abc import Callable

from django.conf import settings

from config.heap import keep_freed_memory

logger = logging.getLogger(__name__)

_warm_ups: dict[str, Callable[[], None]] = {}


def register_warm_up(name, fn):
    """Registering a name again replaces it (ready() may run more than once in tests)."""
    _warm_ups[name] = fn


def warm_up():
    keep_freed_memory(settings.LAB_HEAP_TOP_PAD_MB)
    for fn in _warm_ups.values():
        fn()
    logger.info("warmed up: %s", ", ".join(_warm_ups) or "nothing registered")
