"""A minimal Django Channels project: one consumer that forwards the group ``all``."""
