"""Domain errors of the AURA lakehouse. Each message says what was wrong and what to do.

One class per failure a caller handles differently, all under :class:`AuraError`:

* :class:`ConfigurationError`: a setting or an argument is missing or malformed (fix it);
  :class:`MemoryKeyError` for memory keys.
* :class:`StoreUnavailableError`: a store (catalog database, Redis, Qdrant) did not answer (start
  it, or retry once it answers); :class:`TierUnavailableError` for a memory tier.
* :class:`ValidationError`: data breaks a table's or a stream's contract
  (:class:`InvalidEvent` for one stream event).
* Tables and refs: :class:`UnknownTableError`, :class:`SchemaEvolutionError`,
  :class:`CommitConflictError`, :class:`RefError` / :class:`NotFastForwardError`.
* Reads: :class:`ReadOnlyError`, :class:`TimeTravelError`.
* Vectors (:mod:`lakehouse.vectors`): :class:`VectorStoreBusyError` (a shard held by another
  process past the wait), :class:`VectorStoreError` (the engine refused an operation).

Domain modules add their own leaves (``CheckpointDecodeError``, ``ModelArtifactError``,
``BackupError``), always under :class:`AuraError`.
"""


class AuraError(Exception):
    """Base class of every error AURA raises on purpose."""


class ConfigurationError(AuraError):
    """A setting is missing or malformed."""


class UnknownTableError(AuraError):
    """A table name is not one of the registered aura tables."""


class SchemaEvolutionError(AuraError):
    """A write would change the table schema in a non-additive way."""


class CommitConflictError(AuraError):
    """A commit kept conflicting with concurrent writers after all retries."""


class ValidationError(AuraError):
    """Input data does not satisfy the table contract."""


class InvalidEvent(ValidationError, ValueError):
    """One stream event breaks its domain's contract; the message is the reason stored with its
    dead letter (say which field is wrong and what a valid value looks like).

    Also a ``ValueError``, so parsers written against the standard library's conventions still
    catch it.
    """


class RefError(AuraError):
    """A branch or tag is missing, already exists, or cannot be moved as asked."""


class NotFastForwardError(RefError):
    """A publish was refused because the target is not an ancestor of the source."""


class ReadOnlyError(AuraError):
    """A statement would write through a read-only interface."""


class QueryTimeoutError(AuraError):
    """A SQL statement ran past its time limit and was stopped."""


class TimeTravelError(AuraError):
    """A time or snapshot id does not name a state of the table (too early, or unknown)."""


class StoreUnavailableError(AuraError):
    """A store (the catalog database, Redis, Qdrant) did not answer; the message names the
    variable that configures it."""


class TierUnavailableError(StoreUnavailableError):
    """A memory tier a call needs (Redis, Qdrant) does not answer; nothing was written."""


class VectorStoreBusyError(StoreUnavailableError):
    """A vector shard stayed open in another process (or thread) for the whole wait; it is never
    opened twice: retry once the holder (named in the message) has closed it."""


class VectorStoreError(AuraError):
    """The vector engine refused an operation (a vector of the wrong size, a shard made with
    another configuration, a closed store); the message carries the engine's reason and what
    to do."""


class MemoryKeyError(ConfigurationError):
    """Encrypted memories cannot be read with the configured keys (none set, a wrong key, or a
    ciphertext altered or moved to another tenant or memory); the message says what to set."""


class StreamRefusedError(AuraError):
    """Redis answers but refuses an event on a stream (an entry at the maximum id, a key of
    another type); nothing was written."""


class HomeStateError(ConfigurationError):
    """This AURA_HOME cannot be used as it is: a restore into it did not finish, or its catalog
    names tables in another home's warehouse (a copied directory); the message says what to do."""
