"""The parts of ``bench/delivery.py``; importing any puts ``bench/baselines`` on the path."""

import sys

from .constants import BASELINES

# feed.py and sio_client.py sit beside the baselines, not in a package.
sys.path.insert(0, str(BASELINES))
