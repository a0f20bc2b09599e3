"""Publishing to RabbitMQ, shared by the Django producer and the bridge; no Django here.

- :mod:`messaging.entities`: the topology of :mod:`schemas.topology` as kombu
  exchanges and queues, and declaring them.
- :mod:`messaging.publisher`: an event as a Celery task message, published with
  confirms within a time bound.

``producer`` (the Django app) and ``bridge`` (the server) both import this
package and never each other.
"""
