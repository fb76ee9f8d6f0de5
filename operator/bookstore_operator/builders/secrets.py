"""The generated Secrets: created once when absent and never patched (a changed password
under a running database loses the data)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping

from bookstore_operator.builders.common import (
    API_KEY_SECRET_KEY,
    DATABASE_SECRET_KEYS,
    Component,
    Manifest,
    metadata,
)
from bookstore_operator.models import Bookstore

Token = Callable[[], str]


def random_token() -> str:
    """A 256-bit URL-safe random secret."""
    return secrets.token_urlsafe(32)


def _secret(
    store: Bookstore, name: str, component: Component | None, data: Mapping[str, str]
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(store, name, component),
        "type": "Opaque",
        # Values never change after creation; immutable also spares the kubelet a watch.
        "immutable": True,
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def build_database_secret(store: Bookstore, token: Token = random_token) -> Manifest | None:
    """`<name>-db`: the superuser's and each service's database password; None when external."""
    if store.spec.database.is_external:
        return None
    data = {key: token() for key in DATABASE_SECRET_KEYS}
    return _secret(store, store.child_name("db"), "database", data)


def build_api_key_secret(store: Bookstore, token: Token = random_token) -> Manifest | None:
    """`<name>-api-key`: the key write requests carry; None when spec.auth names a Secret."""
    if store.spec.auth.api_key_secret_name:
        return None
    return _secret(store, store.child_name("api-key"), None, {API_KEY_SECRET_KEY: token()})
