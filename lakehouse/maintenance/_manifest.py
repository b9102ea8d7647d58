"""A backup's manifest: its format, its signature, and the checks that make restore trust nothing.

The manifest (``DEST/manifest.json``) lists the tables and every file of the backup with its
sha256 and size. What a restore reads from a backup is checked here before anything is written:

* **Paths** in the manifest are relative POSIX paths below ``files/``: never absolute, never
  ``..``, ``.`` or empty parts, no backslash or control character; the file found there is a
  regular file reached without a symlink
  (:meth:`lakehouse.maintenance._location.Location.unsafe`).
* **Names**: every table is a registered aura table, every ref name passes the rule every ref
  passes (:func:`lakehouse.table.refs.validate_ref_name`).
* **Authenticity**: with ``AURA_BACKUP_KEY`` set, the manifest carries an HMAC-SHA256 of its
  canonical JSON (:func:`sign`), which covers every file's sha256, so no file, table, ref or
  snapshot can change without the key. Without a key, :func:`digest` (the sha256 of the same
  canonical JSON) is printed by ``aura backup`` and can be given back to ``aura restore
  --expect-digest``: the same protection with the anchor kept by the operator.

The threat model is in ``docs/backup.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any, cast

from lakehouse.exceptions import AuraError, RefError, UnknownTableError
from lakehouse.table.refs import validate_ref_name
from lakehouse.table.registry import spec_for

FORMAT = "aura-backup/1"
MANIFEST = "manifest.json"
HISTORY = "manifests"
FILES = "files"
SIGNATURE = "signature"

# Kinds of file, in the order a restore writes them (rewritten Avro before what names it).
ARTIFACT, DATA, STATISTICS, MANIFEST_FILE, MANIFEST_LIST, METADATA = (
    "artifact",
    "data",
    "statistics",
    "manifest",
    "manifest_list",
    "metadata",
)
ORDER = (ARTIFACT, DATA, STATISTICS, MANIFEST_FILE, MANIFEST_LIST, METADATA)
# State outside the tables (memories, the spool, checkpoint hot rows): imported, never copied
# into the warehouse (:mod:`lakehouse.maintenance._state`).
STATE = "state"


class BackupError(AuraError):
    """A backup, verification or restore cannot proceed as asked."""


# --------------------------------------------------------------------------- canonical form


def canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes a signature and a digest cover: the manifest without its signature."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest(manifest: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the manifest's canonical form (covers every file's checksum)."""
    return "sha256:" + hashlib.sha256(canonical(manifest)).hexdigest()


def _key_bytes(key: str) -> bytes:
    return base64.urlsafe_b64decode(key.encode("ascii"))


def key_id(key: str) -> str:
    """A short public name of a key (which key signed a backup, without revealing it)."""
    return hashlib.sha256(b"aura-backup-key-id:" + _key_bytes(key)).hexdigest()[:16]


def sign(manifest: dict[str, Any], key: str | None) -> dict[str, Any]:
    """``manifest`` with an HMAC-SHA256 signature by ``key`` (unchanged without a key)."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE}
    if key is None:
        return body
    mac = hmac.new(_key_bytes(key), canonical(body), hashlib.sha256).hexdigest()
    return {**body, SIGNATURE: {"alg": "hmac-sha256", "key_id": key_id(key), "value": mac}}


def signature_status(manifest: dict[str, Any], key: str | None) -> str:
    """``signed`` (valid), ``unsigned``, ``invalid`` or ``unverifiable`` (signed, no key)."""
    signature = manifest.get(SIGNATURE)
    if signature is None:
        return "unsigned"
    if key is None:
        return "unverifiable"
    if not isinstance(signature, dict) or signature.get("alg") != "hmac-sha256":
        return "invalid"
    want = hmac.new(_key_bytes(key), canonical(manifest), hashlib.sha256).hexdigest()
    value = signature.get("value")
    return "signed" if isinstance(value, str) and hmac.compare_digest(value, want) else "invalid"


def trust_problem(manifest: dict[str, Any], key: str | None, expect_digest: str | None) -> str:
    """Why ``manifest`` cannot be trusted with this key and expected digest ("" when it can)."""
    if expect_digest is not None and expect_digest.strip() != digest(manifest):
        return (
            f"its manifest digest is {digest(manifest)}, not the expected {expect_digest.strip()}: "
            "the backup was changed after it was made (or the digest belongs to another backup)"
        )
    status = signature_status(manifest, key)
    if status == "invalid":
        return (
            "its manifest signature does not match AURA_BACKUP_KEY: the backup was changed "
            "after it was made, or it was signed with another key"
        )
    if status == "unverifiable":
        return (
            "it is signed but AURA_BACKUP_KEY is not set; set it to the key the backup was made "
            "with so the signature can be checked"
        )
    if status == "unsigned" and key is not None:
        return (
            "it is not signed although AURA_BACKUP_KEY is set (backups made with the key are "
            "signed): it was made without the key or its signature was removed; unset "
            "AURA_BACKUP_KEY and pass --expect-digest to restore an unsigned backup"
        )
    return ""


# --------------------------------------------------------------------------- read and write


def parse(data: bytes, where: str) -> dict[str, Any]:
    """The manifest in ``data``, read from ``where``.

    Raises:
        BackupError: it is not a readable aura backup manifest.
    """
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackupError(f"{where} is not valid JSON ({exc}); the backup is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{where} is not an {FORMAT} manifest")
    return cast(dict[str, Any], manifest)


def serialise(manifest: dict[str, Any]) -> bytes:
    """The bytes of ``manifest.json``."""
    return json.dumps(manifest, indent=1, sort_keys=True).encode()


def tables_warehouse(manifest: dict[str, Any]) -> str:
    """Where the source catalog kept the tables (a REST catalog's own warehouse), which their
    files' paths in the backup are relative to; else the source warehouse."""
    source: dict[str, str] = manifest["source"]
    return source.get("tables_warehouse") or source["warehouse"]


def history_name(manifest: dict[str, Any]) -> str:
    return str(manifest["created_at"]).replace(":", "").replace("+0000", "Z") + ".json"


# --------------------------------------------------------------------------- structure


def safe_rel(rel: object) -> bool:
    """Whether ``rel`` is a relative path that stays below the directory it is joined to."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel:
        return False
    if any(ord(c) < 32 or ord(c) == 127 for c in rel):
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def structure_problems(manifest: dict[str, Any]) -> list[str]:
    """What makes a manifest unusable as it is written: hostile paths or names, wrong shapes."""
    problems: list[str] = []
    files = manifest.get("files")
    tables = manifest.get("tables")
    source = manifest.get("source")
    if not isinstance(files, dict) or not isinstance(tables, dict) or not isinstance(source, dict):
        return ["the manifest lacks its files, tables or source"]
    if not isinstance(source.get("warehouse"), str) or not source["warehouse"]:
        problems.append("the manifest names no source warehouse")
    if not isinstance(source.get("tables_warehouse", "-"), str) or not source.get(
        "tables_warehouse", "-"
    ):
        problems.append("the manifest's tables warehouse is not a location")
    for rel, entry in files.items():
        if not safe_rel(rel):
            problems.append(f"file path {rel!r} is absolute or leaves the backup")
        elif (
            not isinstance(entry, dict)
            or entry.get("kind") not in (*ORDER, STATE)
            or not isinstance(entry.get("size"), int)
            or not isinstance(entry.get("sha256"), str)
        ):
            problems.append(f"file {rel!r} has no valid kind, size and sha256")
    for name, table in tables.items():
        try:
            if spec_for(name).name != name:
                raise UnknownTableError(name)
        except UnknownTableError:
            problems.append(f"table name {name!r} is not an aura table")
            continue
        if not isinstance(table, dict) or not isinstance(table.get("refs"), dict):
            problems.append(f"table {name!r} has no description")
            continue
        metadata = table.get("metadata")
        if not safe_rel(metadata) or files.get(metadata, {}).get("kind") != METADATA:
            problems.append(f"the metadata of table {name!r} is not a metadata file of the backup")
        problems += ref_problems(name, table["refs"])
    return problems


def ref_problems(table: str, names: Iterable[object]) -> list[str]:
    """Ref names that the rule every ref name passes refuses."""
    problems = []
    for ref in names:
        try:
            validate_ref_name(ref, user=False)  # type: ignore[arg-type]
        except RefError:
            problems.append(f"table {table!r} has a ref named {ref!r}, which is not a valid name")
    return problems
