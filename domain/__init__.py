"""The domain of sdh: aggregates, value objects and the rules they hold. Pure: no I/O."""
