"""Read models (CQRS views): built only from event payloads, each query a plain SQL read."""
