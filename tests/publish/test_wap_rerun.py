"""A run retried under its own id after it published (a crash after the publish) publishes again."""

from __future__ import annotations

from datetime import date

from helpers import decisions

from lakehouse import Lakehouse, Lineage
from lakehouse.publish.wap import write_audit_publish
from quality.audit import gx_audit

DAY = date(2026, 11, 20)


def test_rerun_with_the_same_run_id_after_publish_gets_a_fresh_tag(lakehouse: Lakehouse) -> None:
    lineage = Lineage(asset="routing_decisions", partition=DAY.isoformat(), run_id="r1")
    first = write_audit_publish(
        lakehouse, "routing_decisions", decisions(5), audit=gx_audit, day=DAY, lineage=lineage
    )
    again = write_audit_publish(
        lakehouse, "routing_decisions", decisions(7), audit=gx_audit, day=DAY, lineage=lineage
    )
    assert (first.tag, again.tag) == ("run-r1-20261120", "run-r1-20261120-2")
    assert again.published and lakehouse.read("routing_decisions").num_rows == 7
