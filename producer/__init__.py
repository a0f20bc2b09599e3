"""The Django side: enqueue typed events onto RabbitMQ after each commit."""
