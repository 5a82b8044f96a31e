import os

from django.core.wsgi import get_wsgi_application

from agents.backtest import kernel

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# The console draws equity curves with the backtest engine: load its compiled kernel now, not on
# a user's first request.
kernel.warm_up()
