"""Routing decisions: the model router's events, ingested from Redis into Iceberg."""
