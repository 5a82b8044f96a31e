import os

from django.core.wsgi import get_wsgi_application

from config.bootstrap import bootstrap
from config.warmup import warm_up

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
bootstrap()
application = get_wsgi_application()
# The console draws equity curves with the backtest engine: load its compiled kernel now, not on
# a user's first request.
warm_up()
