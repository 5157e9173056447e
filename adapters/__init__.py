"""Everything that touches the outside world: databases, settings, deploy targets, NATS."""
