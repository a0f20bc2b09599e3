"""RabbitMQ for an operator, synchronously with kombu: the topology and the dead letters.

The command line uses this package; the bridge itself never does (it has
:mod:`bridge.amqp`). Names come only from :mod:`schemas.topology`.

- :mod:`~bridge.rabbitadmin.connection`: connecting, one channel per step;
- :mod:`~bridge.rabbitadmin.topology`: declaring and checking the topology;
- :mod:`~bridge.rabbitadmin.deadletters`: listing and replaying dead letters.
"""
