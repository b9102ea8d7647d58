"""Publishing: write-audit-publish for one table, experiments that span every table."""
