"""Dagster definitions of the AURA lakehouse (thin layer over the ``lakehouse`` library)."""
