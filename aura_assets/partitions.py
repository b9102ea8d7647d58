"""Partitioning shared by every AURA domain: one partition per UTC day."""

from dagster import DailyPartitionsDefinition

DAILY = DailyPartitionsDefinition(start_date="2024-01-01", timezone="UTC", end_offset=1)
