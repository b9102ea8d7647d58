"""Guards every stream event passes before it reaches a table, shared by every stream domain.

A stream carries whatever a producer (or an attacker) sent. An event is stored only when each
value fits its column: identifiers are short printable strings, integers fit a signed 64-bit
column, numbers are finite, timestamps fall inside the partitioned range, lists are bounded, and
the whole payload is bounded. Every guard raises :class:`InvalidEvent` whose message names the
field and the problem; :func:`lakehouse.ingest.streams.parse_stream_entries` turns that (and any
other
exception raised while parsing one entry) into a dead letter, so no event can stop a batch.

Use in a domain's event parser (see ``lakehouse/routing/events.py``)::

    event = load_object(payload)
    decision_id = identifier(event, "decision_id")
    ts = timestamp(event, "ts")
    tokens = integer(event, "prompt_tokens", minimum=0)
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

import orjson

from lakehouse.exceptions import InvalidEvent
from lakehouse.settings import partitions_start

FUTURE_ALLOWANCE = timedelta(hours=1)
"""How far past now an event time may be (producer clock skew)."""
MAX_EVENT_BYTES = 64 * 1024
"""Largest payload accepted; a larger one is a dead letter."""
MAX_RAW_CHARS = 4 * 1024
"""A dead letter keeps at most this much of an oversized payload."""
MAX_ID_CHARS = 200
"""Longest identifier (tenant, decision, model, task, thread, ...)."""
MAX_TEXT_CHARS = 16 * 1024
"""Longest free-text value."""
MAX_LIST_ITEMS = 64
"""Most items in a list-valued field."""
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def load_object(raw: str | bytes, *, max_bytes: int = MAX_EVENT_BYTES) -> dict[str, Any]:
    """Parse a payload that must be a JSON object of at most ``max_bytes``."""
    size = len(raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise InvalidEvent(f"event is {size} bytes, more than the {max_bytes} allowed")
    try:
        event = orjson.loads(raw)
    except (orjson.JSONDecodeError, UnicodeError) as exc:
        raise InvalidEvent(f"invalid JSON: {getattr(exc, 'msg', None) or exc}") from None
    if not isinstance(event, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(event).__name__}")
    check_unique_keys(raw, event)
    return event


def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key given twice (``object_pairs_hook``).

    JSON parsers keep the last of two equal keys and drop the other value silently; a payload
    whose meaning depends on which parser reads it is refused instead.
    """
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidEvent(
                    f"duplicate key {_short(key, 40)} in a JSON object: send each key once"
                )
            seen.add(key)
    return obj


_KEY_END = re.compile(rb'"\s*:')
"""Where a key can end: every key's closing quote is followed by optional blanks and a colon
(inside strings a quote is escaped, so matches there only add to the count)."""


def _keys(value: object) -> int:
    """How many keys the objects of a parsed JSON value hold, at every depth."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def check_unique_keys(raw: str | bytes, parsed: object = None) -> None:
    """Refuse a JSON payload in which any object, at any depth, repeats a key.

    With ``parsed`` (the payload already parsed), a payload whose parsed objects hold as many
    keys as the text has places where a key can end has no key twice (parsed keys <= keys in
    the text <= those places), and is not parsed again; the rest is parsed with a hook that
    refuses a repeated key.
    """
    if parsed is not None:
        data = raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else raw
        if _keys(parsed) == len(_KEY_END.findall(data)):
            return
    try:
        json.loads(raw, object_pairs_hook=unique_object)
    except InvalidEvent:
        raise
    except RecursionError:
        raise InvalidEvent("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # what orjson accepted but the standard parser does not
        raise InvalidEvent(f"invalid JSON: {str(exc)[:120]}") from None


def require(event: dict[str, Any], names: tuple[str, ...]) -> None:
    """Every field of ``names`` is present and not null."""
    missing = [name for name in names if event.get(name) is None]
    if missing:
        raise InvalidEvent(f"missing field(s): {', '.join(missing)}")


def _short(value: object, limit: int = 80) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown)} chars)"


def check_identifier(name: str, value: object, *, max_chars: int = MAX_ID_CHARS) -> str:
    """``value`` as an identifier: a non-blank printable string of at most ``max_chars``.

    Printable excludes control characters (NUL), format characters (right-to-left override,
    zero-width joiners), surrogates, private-use and line separators.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(f"{name} must be a non-empty string, got {_short(value)}")
    if len(value) > max_chars:
        raise InvalidEvent(f"{name} is {len(value)} characters, more than the {max_chars} allowed")
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        raise InvalidEvent(f"{name} contains the unprintable character U+{ord(bad):04X}")
    return value


def identifier(event: dict[str, Any], name: str, *, max_chars: int = MAX_ID_CHARS) -> str:
    """The identifier field ``name`` of ``event`` (see :func:`check_identifier`)."""
    return check_identifier(name, event.get(name), max_chars=max_chars)


def text(event: dict[str, Any], name: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A free-text field: a string of at most ``max_chars``, without NUL or surrogates."""
    value = event.get(name)
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} must be a string, got {_short(value)}")
    if len(value) > max_chars:
        raise InvalidEvent(f"{name} is {len(value)} characters, more than the {max_chars} allowed")
    if "\x00" in value:
        raise InvalidEvent(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(f"{name} contains an unpaired surrogate") from None
    return value


def integer(
    event: dict[str, Any],
    name: str,
    *,
    minimum: int = INT64_MIN,
    maximum: int = INT64_MAX,
) -> int:
    """An integer field in ``[minimum, maximum]`` (default: what a 64-bit column holds)."""
    value = event.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"{name} must be an integer, got {_short(value)}")
    if not max(minimum, INT64_MIN) <= value <= min(maximum, INT64_MAX):
        raise InvalidEvent(
            f"{name} must be in [{max(minimum, INT64_MIN)}, {min(maximum, INT64_MAX)}], got {value}"
        )
    return value


def number(
    event: dict[str, Any],
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """A finite number field (integers accepted) in ``[minimum, maximum]``, as a float."""
    value = event.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"{name} must be a finite number, got {_short(value)}")
    try:
        result = float(value)
    except OverflowError:
        raise InvalidEvent(f"{name} is too large for a double: {_short(value)}") from None
    if not math.isfinite(result):
        raise InvalidEvent(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and result < minimum:
        raise InvalidEvent(f"{name} must be >= {minimum}, got {result}")
    if maximum is not None and result > maximum:
        raise InvalidEvent(f"{name} must be <= {maximum}, got {result}")
    return result


def boolean(event: dict[str, Any], name: str) -> bool:
    """A true/false field."""
    value = event.get(name)
    if not isinstance(value, bool):
        raise InvalidEvent(f"{name} must be true or false, got {_short(value)}")
    return value


def identifier_list(
    event: dict[str, Any],
    name: str,
    *,
    max_items: int = MAX_LIST_ITEMS,
    max_chars: int = MAX_ID_CHARS,
) -> list[str]:
    """A non-empty list of at most ``max_items`` identifiers."""
    value = event.get(name)
    if not isinstance(value, list) or not value:
        raise InvalidEvent(f"{name} must be a non-empty list of strings, got {_short(value)}")
    if len(value) > max_items:
        raise InvalidEvent(f"{name} has {len(value)} items, more than the {max_items} allowed")
    return [check_identifier(f"{name}[{i}]", v, max_chars=max_chars) for i, v in enumerate(value)]


def time_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The accepted event times: from the first partition to ``now`` plus the allowance."""
    now = now or datetime.now(UTC)
    return datetime.combine(partitions_start(), time(), tzinfo=UTC), now + FUTURE_ALLOWANCE


def check_timestamp(name: str, value: object, *, now: datetime | None = None) -> datetime:
    """``value`` as a UTC time: ISO-8601 with an offset, inside :func:`time_window`.

    Times before the first partition or after now plus :data:`FUTURE_ALLOWANCE` have no day
    partition to go to; they are refused here rather than left pending forever.
    """
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} must be an ISO-8601 string, got {_short(value)}")
    if len(value) > 64:
        raise InvalidEvent(f"{name} is not ISO-8601: {_short(value)}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"{name} is not ISO-8601: {_short(value)}") from None
    if ts.tzinfo is None:
        raise InvalidEvent(f"{name} must carry a UTC offset (e.g. +00:00): {_short(value)}")
    try:
        ts = ts.astimezone(UTC)
    except (OverflowError, ValueError):  # 0001-01-01T00:30+01:00 is before year 1 in UTC
        raise InvalidEvent(f"{name} is outside the representable range: {value!r}") from None
    return check_time(name, ts, now=now)


def check_time(name: str, ts: datetime, *, now: datetime | None = None) -> datetime:
    """``ts`` (aware) if it lies inside :func:`time_window`, else :class:`InvalidEvent`."""
    earliest, latest = time_window(now)
    if ts < earliest:
        raise InvalidEvent(
            f"{name} {ts.isoformat()} is before the first day partition ({earliest.date()}, "
            "AURA_PARTITIONS_START)"
        )
    if ts > latest:
        raise InvalidEvent(
            f"{name} {ts.isoformat()} is in the future (more than {FUTURE_ALLOWANCE} after now)"
        )
    return ts


MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def epoch_ms(event: dict[str, Any], name: str) -> datetime:
    """A time field given as milliseconds since the epoch, as a UTC ``datetime``."""
    ms = integer(event, name, minimum=0, maximum=MAX_EPOCH_MS)
    return datetime.fromtimestamp(ms / 1000, UTC)


def timestamp(event: dict[str, Any], name: str, *, now: datetime | None = None) -> datetime:
    """The time field ``name`` of ``event`` (see :func:`check_timestamp`)."""
    return check_timestamp(name, event.get(name), now=now)


def bounded_raw(raw: str | None, *, max_chars: int = MAX_RAW_CHARS) -> str | None:
    """A payload as stored with its dead letter: oversized payloads are cut, saying so."""
    if raw is None or len(raw) <= max_chars:
        return raw
    return f"{raw[:max_chars]}... [truncated: {len(raw)} characters in all]"
