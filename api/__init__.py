"""The edges of sdh: HTTP API, CLI and the composition root."""
