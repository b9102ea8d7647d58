"""Lakehouse maintenance: ref retention."""
