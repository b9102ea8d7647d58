"""Retention policy and the results an archive run reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from lakehouse.exceptions import AuraError


@dataclass(frozen=True)
class RetentionPolicy:
    """Which checkpoints stay hot: the last ``keep_last`` per thread namespace, and (when set)
    every checkpoint younger than ``max_age_days``. The newest checkpoint always stays hot."""

    keep_last: int | None = 20
    max_age_days: float | None = None

    def __post_init__(self) -> None:
        if self.keep_last is None and self.max_age_days is None:
            raise AuraError("a retention policy needs keep_last, max_age_days or both")
        if self.keep_last is not None and self.keep_last < 1:
            raise AuraError(f"keep_last must be at least 1 (got {self.keep_last})")


@dataclass(frozen=True)
class ArchiveResult:
    """What one archive run added for one day."""

    day: date
    checkpoints: int
    writes: int
    blobs: int
    raw_bytes: int
    archive_bytes: int

    @property
    def ratio(self) -> float | None:
        """Archive bytes over raw checkpoint bytes (``None`` when nothing was archived)."""
        return self.archive_bytes / self.raw_bytes if self.raw_bytes else None


@dataclass(frozen=True)
class RetentionResult:
    """What a retention pass removed from the hot store."""

    candidates: int
    trimmed: int
    not_archived: int
