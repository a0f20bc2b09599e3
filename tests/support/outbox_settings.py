"""The example project's settings, with the relay alone sending the outbox.

Tests that run ``manage.py event_bridge_relay`` under load set
``DJANGO_SETTINGS_MODULE`` to this module (with ``example/`` on the path).
"""

from mi_proyecto.settings import *  # noqa: F403
from mi_proyecto.settings import EVENT_BRIDGE as _EXAMPLE

EVENT_BRIDGE = {**_EXAMPLE, "SEND_ON_COMMIT": False}
