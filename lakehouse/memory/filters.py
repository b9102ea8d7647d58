"""The payload filters the warm tier and the cold index search and delete with.

``qdrant_client`` is imported when a filter is first built, not with the memory package: the
package is imported by table discovery in every ``aura`` process, and the client's import costs
about half a second that a command which never touches a vector engine should not pay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qdrant_client.models import Filter


def all_of(conditions: Sequence[Any]) -> Filter:
    """Points matching every one of ``conditions`` (filters or field conditions)."""
    from qdrant_client import models as qm

    return qm.Filter(must=list(conditions))


def live(now_ms: int) -> Filter:
    """Points whose hard TTL has not passed at ``now_ms``."""
    from qdrant_client import models as qm

    return qm.Filter(
        should=[
            qm.IsNullCondition(is_null=qm.PayloadField(key="expires_ms")),
            qm.FieldCondition(key="expires_ms", range=qm.Range(gt=now_ms)),
        ]
    )


def expired(now_ms: int) -> Filter:
    """Points whose hard TTL passed at or before ``now_ms``."""
    from qdrant_client import models as qm

    return all_of([qm.FieldCondition(key="expires_ms", range=qm.Range(lte=now_ms))])


def tenant_of(tenant_id: str) -> Filter:
    """The points of one tenant."""
    return all_of([equals("tenant_id", tenant_id)])


def equals(key: str, value: object) -> Any:
    """The condition: payload field ``key`` holds ``value``."""
    from qdrant_client import models as qm

    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))  # type: ignore[arg-type]


def created_before(ms: int) -> Any:
    """The condition: the point was created before ``ms`` (epoch milliseconds)."""
    from qdrant_client import models as qm

    return qm.FieldCondition(key="created_ms", range=qm.Range(lt=ms))
