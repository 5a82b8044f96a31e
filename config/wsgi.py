import os

from django.core.wsgi import get_wsgi_application

from config.bootstrap import bootstrap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
bootstrap()
application = get_wsgi_application()
