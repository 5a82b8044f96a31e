"""Work a process does once at start so that no user's first request pays for it.

`config` imports no app: an app registers what it needs warmed from its AppConfig.ready()
(agents registers the compiled backtest kernel), and the web and worker entry points call
`warm_up()` after Django is set up.
"""

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

_warm_ups: dict[str, Callable[[], None]] = {}


def register_warm_up(name, fn):
    """Registering a name again replaces it (ready() may run more than once in tests)."""
    _warm_ups[name] = fn


def warm_up():
    for fn in _warm_ups.values():
        fn()
    logger.info("warmed up: %s", ", ".join(_warm_ups) or "nothing registered")
