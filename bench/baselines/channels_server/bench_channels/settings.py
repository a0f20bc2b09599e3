"""Settings of the Channels baseline: no database, no apps, one Redis channel layer.

``serve.py`` and ``channels_publisher.py`` set ``BENCH_CHANNELS_REDIS`` and
``BENCH_CHANNELS_PREFIX`` before Django reads this module, so that the server
and its publisher share one channel layer.
"""

import os

SECRET_KEY = "bench-only-not-secret"  # noqa: S105 - a benchmark server on loopback
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
ASGI_APPLICATION = "bench_channels.asgi.application"

# The layer Channels documents for production: channels_redis' RedisChannelLayer, defaults kept.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("BENCH_CHANNELS_REDIS", "redis://127.0.0.1:6379/0")],
            "prefix": os.environ.get("BENCH_CHANNELS_PREFIX", "asgi"),
        },
    }
}
