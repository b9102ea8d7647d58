"""Open an Iceberg REST catalog (``AURA_CATALOG_URI=http(s)://...``) with pyiceberg.

The client credential (OAuth2 ``client_id:client_secret``) and the S3 keys are handed to
pyiceberg only: errors name the catalog URL and the variables to check, never a secret, and the
driver's own message is scrubbed of them before it is shown.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util

from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError

from lakehouse.exceptions import ConfigurationError, StoreUnavailableError
from lakehouse.settings import NAMESPACE, redact_text, redact_url

# A REST catalog that does not answer within this many seconds is reported as unreachable.
REQUEST_TIMEOUT_S = 30


def client_credential(catalog: RestCatalog) -> str | None:
    """The ``client_id:client_secret`` a catalog opened here authenticates with (or None)."""
    auth = catalog.properties.get("auth")
    oauth2 = auth.get("oauth2") if isinstance(auth, dict) else None
    if not isinstance(oauth2, dict):
        return None
    return f"{oauth2['client_id']}:{oauth2['client_secret']}"


def oauth2_server_uri(uri: str) -> str:
    """The REST catalog's OAuth2 token endpoint (the spec's ``/v1/oauth/tokens``)."""
    return f"{uri.rstrip('/')}/v1/oauth/tokens"


@functools.cache
def open_rest_catalog(
    uri: str,
    name: str,
    warehouse: str,
    credential: str | None,
    io: tuple[tuple[str, str], ...],
) -> RestCatalog:
    """A pyiceberg ``RestCatalog`` (cached per process) with namespace ``aura`` created.

    Without a credential and with S3 keys configured, requests are signed with SigV4 (the form
    AWS's own REST catalogs ask for).

    Raises:
        StoreUnavailableError: the catalog does not answer, or refuses the credential.
    """
    props = dict(io)
    options: dict[str, object] = {
        "uri": uri,
        "warehouse": warehouse,
        "timeout": str(REQUEST_TIMEOUT_S),
        **props,
    }
    if credential:
        # pyiceberg's OAuth2 manager renews the token before it expires (the legacy
        # ``credential`` property does not: a process running past the token's life would fail).
        client_id, _, client_secret = credential.partition(":")
        options["auth"] = {
            "type": "oauth2",
            "oauth2": {
                "client_id": client_id,
                "client_secret": client_secret,
                "token_url": oauth2_server_uri(uri),
            },
        }
    elif "s3.access-key-id" in props:
        if importlib.util.find_spec("boto3") is None:  # pyiceberg signs with botocore
            raise ConfigurationError(
                f"the Iceberg REST catalog at {redact_url(uri)} would be signed with SigV4 "
                "(AURA_CATALOG_CREDENTIAL is unset and AWS keys are set), which needs boto3: "
                "pip install boto3, or set AURA_CATALOG_CREDENTIAL=client_id:client_secret"
            )
        options["rest.sigv4-enabled"] = "true"
        options["rest.signing-region"] = props.get("s3.region", "us-east-1")
        # pyiceberg's signer takes its keys from the client.* properties (else boto3's chain)
        options["client.access-key-id"] = props["s3.access-key-id"]
        options["client.secret-access-key"] = props.get("s3.secret-access-key", "")
        options["client.region"] = props.get("s3.region", "us-east-1")
    secrets = [s for s in (credential, props.get("s3.secret-access-key")) if s]
    secrets += [p for s in secrets for p in s.split(":") if len(p) >= 4]
    try:
        catalog = RestCatalog(name, **options)  # type: ignore[arg-type]
        with contextlib.suppress(NamespaceAlreadyExistsError):
            catalog.create_namespace(NAMESPACE)
    except Exception as exc:  # requests, OAuth and REST errors have many types
        reason = redact_text(" ".join(str(exc).split())[:300], secrets)
        raise StoreUnavailableError(
            f"cannot open the Iceberg REST catalog at {redact_url(uri)} (warehouse "
            f"{warehouse!r}): {type(exc).__name__} ({reason}). Check AURA_CATALOG_URI, "
            "AURA_CATALOG_CREDENTIAL (client_id:client_secret), AURA_CATALOG_WAREHOUSE and that "
            "the catalog is reachable."
        ) from None
    return catalog
