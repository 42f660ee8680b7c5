"""Request handlers, one module per Kafka API family, found through a dispatch table."""
