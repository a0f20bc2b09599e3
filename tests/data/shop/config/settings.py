import os

import dj_database_url

SECRET_KEY = "a-test-project-key"
DEBUG = True  # model_events is strict while DEBUG is on
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "producer",
    "shop",
]
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
EVENT_BRIDGE = {
    "BROKER_URL": os.environ["BROKER_URL"],
    "CATALOG": "shop.events",
    "JWT_SECRET": os.environ["JWT_SECRET"],
    "RELAY_POLL_INTERVAL": 0.05,
}
