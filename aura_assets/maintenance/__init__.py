"""Lakehouse maintenance: ref retention and table maintenance (compaction, expiry, orphans)."""
