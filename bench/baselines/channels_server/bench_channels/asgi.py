"""The ASGI application, as the Channels tutorial lays it out."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_channels.settings")
# Django first: it sets up the apps that the routing below may import.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from bench_channels.consumers import EventConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("ws", EventConsumer.as_asgi())]),
    }
)
