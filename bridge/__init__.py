"""The bridge: consumes events from RabbitMQ and sends them to WebSocket clients."""
