"""Settings for the Agent Learning Lab, read from the environment (DJANGO_SETTINGS_MODULE=config.settings).

Every value has a safe default for the embedded mode (SQLite + filesystem broker under var/),
and a bad value fails loudly at start-up, naming the variable (readers: config/env.py).
Importing the settings has no side effect: folders, the generated secret key and
PROMETHEUS_MULTIPROC_DIR are config.bootstrap's job. One module per concern; lab settings are
named after their variables.
"""

from .api import *  # noqa: F403
from .celery import *  # noqa: F403
from .core import *  # noqa: F403
from .lab import *  # noqa: F403
from .observability import *  # noqa: F403
