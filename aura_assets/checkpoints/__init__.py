"""Checkpoints domain: the Iceberg archive of LangGraph workflow checkpoints."""
