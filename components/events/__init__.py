"""The event pipeline: feature events (events.py), the outbox relay that delivers them at least once
(outbox.py), and the Kafka sink (kafka.py) with its producer and registry configuration (kafka_config.py).
Its settings are `core.settings.kafka`'s."""
