"""Use cases of sdh on one event-sourced application (the single, totally ordered store)."""
