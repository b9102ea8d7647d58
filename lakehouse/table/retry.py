"""The one retry policy of AURA's commits: bounded, jittered, refreshing on conflict.

Only lost commit races are retried: pyiceberg's ``CommitFailedException`` (a requirement such as
``AssertRefSnapshotId`` no longer held) and the stale-sequence ``ValueError`` the catalog raises
when another branch of the same table committed meanwhile (a REST catalog's ``BadRequestError``
saying the same; :func:`is_commit_conflict`). Any
other error propagates at once. Between attempts the policy calls ``on_conflict`` (typically
``table.refresh``) and sleeps an exponentially growing, jittered delay. When every attempt lost,
it raises :class:`~lakehouse.exceptions.CommitConflictError` saying what to do.

A catalog database that drops the connection or does not answer is not retried (an append whose
reply was lost may have committed); it raises :class:`~lakehouse.exceptions.StoreUnavailableError`
naming the variables to check. A commit is one catalog transaction, so it is never half-applied.

An action whose data depends on what it read (a read-merge-write) must do the read inside the
action, so that each attempt merges with the head it commits against: :func:`lakehouse.table.writer.
merge_day` does exactly that.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from pyiceberg.exceptions import BadRequestError, CommitFailedException
from sqlalchemy.exc import InterfaceError, OperationalError

from lakehouse.exceptions import CommitConflictError, StoreUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

STALE_SEQUENCE = "older than last sequence number"


REST_STALE_SEQUENCE = "must be > than last sequence number"
"""A REST catalog's (SeaweedFS) refusal of a snapshot whose sequence number another branch's
commit overtook: the same lost race, reported as a 400 Bad Request."""


def is_commit_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` reports a lost commit race (and only that)."""
    if isinstance(exc, CommitFailedException):
        return True
    if isinstance(exc, BadRequestError):
        return REST_STALE_SEQUENCE in str(exc)
    return isinstance(exc, ValueError) and STALE_SEQUENCE in str(exc)


def catalog_unavailable(exc: OperationalError | InterfaceError, what: str) -> StoreUnavailableError:
    """The error for a catalog database that dropped the connection or did not answer."""
    reason = (str(exc.orig or exc).strip().splitlines() or ["no reply"])[0][:200]
    return StoreUnavailableError(
        f"the catalog database did not answer during {what} ({reason}); nothing was "
        "half-applied, but a commit may or may not have landed. Check AURA_PG_URL / "
        "AURA_CATALOG_URI and that the database is reachable, then re-run (day overwrites and "
        "keyed merges are idempotent)"
    )


@contextmanager
def catalog_calls(what: str) -> Iterator[None]:
    """Report a lost catalog connection inside the block as :func:`catalog_unavailable`."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise catalog_unavailable(exc, what) from None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a commit that lost a race is tried again.

    Attributes:
        attempts: tries in all (1 = never retry).
        base_delay: seconds before the second try; doubled for each further one.
        max_delay: upper bound of one delay, in seconds.
        jitter: draw each delay uniformly from ``[delay / 2, delay]`` so that racing writers
            do not retry in lockstep.
    """

    attempts: int = 6
    base_delay: float = 0.05
    max_delay: float = 1.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the failed try number ``attempt`` (1-based)."""
        delay = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return random.uniform(delay / 2, delay) if self.jitter else delay

    def run(
        self,
        action: Callable[[], T],
        *,
        on_conflict: Callable[[], object] | None = None,
        what: str,
    ) -> T:
        """Run ``action`` until it does not lose a commit race, at most ``attempts`` times.

        Args:
            action: the commit (including any read its data depends on).
            on_conflict: called after each lost race, before the next try (e.g. a refresh).
            what: what is being committed, for logs and the final error (e.g.
                ``"overwrite of aura.routing_decisions"``).

        Raises:
            CommitConflictError: every attempt lost a race.
        """
        for attempt in range(1, self.attempts + 1):
            try:
                return action()
            except (OperationalError, InterfaceError) as exc:
                raise catalog_unavailable(exc, what) from None
            except (CommitFailedException, BadRequestError, ValueError) as exc:
                if not is_commit_conflict(exc):
                    raise
                if attempt == self.attempts:
                    raise CommitConflictError(
                        f"{what} lost the commit race to concurrent writers {self.attempts} "
                        f"time(s) (last: {exc}); another writer is busy with the same table: "
                        "retry when it has finished, or raise the RetryPolicy's attempts"
                    ) from exc
                log.info("%s lost a commit race (attempt %d): %s; retrying", what, attempt, exc)
                if on_conflict is not None:
                    on_conflict()
                time.sleep(self.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover


DEFAULT = RetryPolicy()
"""The policy every AURA write uses unless told otherwise."""

NO_RETRY = RetryPolicy(attempts=1)
"""Fail at the first lost race (callers that must re-read before trying again)."""
