"""The ``producer`` Django app: add it to ``INSTALLED_APPS``."""

from django.apps import AppConfig


class ProducerConfig(AppConfig):
    name = "producer"
    verbose_name = "event-bridge producer"

    def ready(self) -> None:
        # Registers the system checks.
        from producer import checks  # noqa: F401, PLC0415
