import os

from django.core.asgi import get_asgi_application

from config.bootstrap import bootstrap
from config.warmup import warm_up

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
bootstrap()
application = get_asgi_application()
warm_up()  # the compiled backtest kernel, before the first request
