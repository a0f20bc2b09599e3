"""The example project: the seed's marketplace, sending its events through event-bridge."""
