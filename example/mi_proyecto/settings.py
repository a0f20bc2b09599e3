"""Settings of the example project, taken from the environment where a deployment differs.

| variable | default |
|---|---|
| ``DATABASE_URL`` | SQLite in ``example/db.sqlite3``; or ``postgresql://user@host:5432/db`` |
| ``BRIDGE_BROKER_URL`` | ``amqp://guest:guest@127.0.0.1:5672//``, as for ``event-bridge serve`` |
| ``BRIDGE_JWT_SECRET`` | none: the token view answers 503; use the bridge's ``--jwt-secret`` |
| ``BRIDGE_URL`` | ``ws://127.0.0.1:4000/ws``, the bridge's WebSocket as browsers reach it |
| ``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG`` | a development key; debug on |
"""

import os
from pathlib import Path

import dj_database_url
import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-example-only-never-deploy-this")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "producer",
    "api_rest",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mi_proyecto.urls"
WSGI_APPLICATION = "mi_proyecto.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        **dj_database_url.config(default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        # Each request is one transaction, so its events leave only if it commits.
        "ATOMIC_REQUESTS": True,
    }
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and django.VERSION >= (5, 1):
    # The outbox's sender thread and relay write too (they delete what they sent): a
    # transaction takes the write lock when it begins, and waits for it, rather than
    # fail when it first writes. Django reads this option from 5.1 on.
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "live"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "es"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

# event-bridge: the producer app reads this dict (see producer/conf.py).
# Roles are the user's group names: "cliente", "proveedor", "admin".
EVENT_BRIDGE = {
    "BROKER_URL": os.environ.get("BRIDGE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    # The seed's event types, in api_rest/events.py; the bridge loads the same module.
    "CATALOG": "api_rest.events",
    "JWT_SECRET": os.environ.get("BRIDGE_JWT_SECRET"),
    "BRIDGE_URL": os.environ.get("BRIDGE_URL", "ws://127.0.0.1:4000/ws"),
}
