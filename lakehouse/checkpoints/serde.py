"""Safe decoding of checkpoint values read from storage: no pickle, no arbitrary constructors.

A checkpoint blob comes from a database or the Iceberg archive that someone else may have
written to. LangGraph's default serializer would unpickle a ``pickle`` value (when its fallback
is on) and, in its permissive msgpack mode (the default unless ``LANGGRAPH_STRICT_MSGPACK`` is
set), import and call any ``module.name`` a msgpack extension names: a tampered blob holding
``("os", "system", "...")`` runs a command on read. Here:

* :func:`safe_serde` is the savers' default: LangGraph's serializer restricted to its built-in
  allowlist of safe types (datetime, UUID, LangChain messages, LangGraph ``Send``/``Command``,
  ...), without pickle. A type outside it is never imported or called.
* :func:`load_typed` decodes one ``(type, bytes)`` value with any serde and turns everything
  that is not a clean decode into a :class:`CheckpointDecodeError` naming the checkpoint: a
  ``pickle`` value (refused before any byte is read), bytes that do not decode, and a value that
  names a type outside the allowlist (the serializer reports it; the value is not returned).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.event_hooks import SerdeEvent, register_serde_event_listener
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from lakehouse.exceptions import AuraError

_BLOCKED: ContextVar[list[str] | None] = ContextVar("aura_serde_blocked", default=None)


class CheckpointDecodeError(AuraError):
    """A stored checkpoint value was refused: pickled, undecodable, or naming unsafe types."""


def safe_serde() -> SerializerProtocol:
    """LangGraph's serializer limited to its allowlist of safe types, without pickle."""
    return JsonPlusSerializer(pickle_fallback=False, allowed_msgpack_modules=None)


def _on_serde_event(event: SerdeEvent) -> None:
    found = _BLOCKED.get()
    if found is not None and event.get("kind", "").endswith("blocked"):
        parts = (event.get("module"), event.get("name"), event.get("method"))
        found.append(".".join(p for p in parts if p))


register_serde_event_listener(_on_serde_event)


def load_typed(serde: SerializerProtocol, typed: tuple[str, bytes], what: str) -> Any:
    """Decode one stored ``(type, bytes)`` value of ``what`` (e.g. "checkpoint X of thread Y").

    Raises:
        CheckpointDecodeError: the value is pickled, does not decode, or names a type outside
            the serializer's allowlist; nothing it names was imported or called.
    """
    type_, data = typed
    if type_ == "pickle":
        raise CheckpointDecodeError(
            f"{what} holds a pickled value; AURA never unpickles stored data. Re-serialize it "
            "with a JSON/msgpack serde."
        )
    found: list[str] = []
    token = _BLOCKED.set(found)
    try:
        value = serde.loads_typed((type_, data))
    except Exception as exc:
        raise CheckpointDecodeError(
            f"{what} cannot be decoded as {type_[:20]!r} ({type(exc).__name__}: "
            f"{str(exc)[:200]}); it is corrupt or was tampered with"
        ) from None
    finally:
        _BLOCKED.reset(token)
    if found:
        raise CheckpointDecodeError(
            f"{what} names types outside the allowlist ({', '.join(sorted(set(found)))}); "
            "refused without importing them. If they are your own state types, pass a serde "
            "that allows them (JsonPlusSerializer(allowed_msgpack_modules=[...]))."
        )
    return value
