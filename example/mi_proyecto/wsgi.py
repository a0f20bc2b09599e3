"""WSGI entry point, for a real server (``gunicorn mi_proyecto.wsgi``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mi_proyecto.settings")

application = get_wsgi_application()
