"""The generated Secrets: random, distinct, and absent when the user brings their own."""

from __future__ import annotations

import base64
import itertools

from bookstore_operator.builders import (
    API_KEY_SECRET_KEY,
    DATABASE_SECRET_KEYS,
    build_api_key_secret,
    build_database_secret,
)

from tests.operator.unit.stores import store_for


def decoded(secret: dict[str, object]) -> dict[str, str]:
    data = secret["data"]
    assert isinstance(data, dict)
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_database_secret_holds_one_fresh_token_per_key() -> None:
    counter = itertools.count()
    secret = build_database_secret(store_for("defaults"), token=lambda: f"token-{next(counter)}")
    assert secret is not None
    assert secret["metadata"]["name"] == "downtown-db"
    assert decoded(secret) == {key: f"token-{i}" for i, key in enumerate(DATABASE_SECRET_KEYS)}
    assert DATABASE_SECRET_KEYS == ("postgres-password", "catalog-password", "orders-password")


def test_api_key_secret_holds_the_api_key() -> None:
    secret = build_api_key_secret(store_for("defaults"), token=lambda: "k3y")
    assert secret is not None
    assert secret["metadata"]["name"] == "downtown-api-key"
    assert decoded(secret) == {API_KEY_SECRET_KEY: "k3y"}
    assert API_KEY_SECRET_KEY == "api-key"


def test_default_tokens_are_random_long_and_distinct_per_call() -> None:
    store = store_for("defaults")
    first, second = build_database_secret(store), build_database_secret(store)
    assert first is not None
    assert second is not None
    values = [*decoded(first).values(), *decoded(second).values()]
    assert len(set(values)) == len(values)
    assert all(len(value) >= 40 for value in values)
    api_keys = {
        decoded(s)[API_KEY_SECRET_KEY] for s in (build_api_key_secret(store) for _ in range(3)) if s
    }
    assert len(api_keys) == 3


def test_no_database_secret_with_an_external_database() -> None:
    assert build_database_secret(store_for("external-database")) is None


def test_no_api_key_secret_when_the_user_names_one() -> None:
    assert build_api_key_secret(store_for("user-api-key")) is None
