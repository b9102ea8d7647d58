"""Partitioning shared by every AURA domain: one partition per UTC day."""

from dagster import DailyPartitionsDefinition

from lakehouse.validation import PARTITIONS_START

DAILY = DailyPartitionsDefinition(
    start_date=PARTITIONS_START.isoformat(), timezone="UTC", end_offset=1
)
