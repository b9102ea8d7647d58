"""The tenant id: one rule for every ``tenant_id`` AURA accepts (memories, tenant SQL sessions).

A tenant id keys Redis entries, Qdrant payload filters and SQL filters, so it must not be able to
alias another tenant: no ``:`` (a key separator), no glob characters, no leading dot and no
``..``.
"""

from __future__ import annotations

import re

from lakehouse.exceptions import ValidationError

TENANT_ID = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$")


def check_tenant(tenant_id: str) -> str:
    """Return ``tenant_id`` if it is a valid tenant id, else raise :class:`ValidationError`."""
    if not isinstance(tenant_id, str) or not TENANT_ID.match(tenant_id):
        raise ValidationError(
            f"tenant_id {tenant_id!r} is not valid: use 1-128 letters, digits or '_.@-', "
            "starting with a letter, digit or _, without '..'"
        )
    return tenant_id
