"""What a reconcile reads before it writes: the Secrets the spec names, and `<name>-db`.

Each check records a `Problem` the user must fix; the reconciler then applies no child.
"""

from __future__ import annotations

import pydantic

from bookstore_operator import builders, kube
from bookstore_operator.models import Bookstore, ExternalDatabaseFacts
from bookstore_operator.status import Problem

SECRET_KEYS_HINT = "host, port, username, password (optional: database, sslmode)"  # noqa: S105


async def check_inputs(client: kube.Kube, store: Bookstore, problems: list[Problem]) -> Bookstore:
    """Read the Secrets the spec names; the store gains the external database's facts."""
    facts = await check_external_database(client, store, problems)
    await check_api_key_secret(client, store, problems)
    return store if facts is None else store.model_copy(update={"external_database": facts})


async def check_external_database(
    client: kube.Kube, store: Bookstore, problems: list[Problem]
) -> ExternalDatabaseFacts | None:
    """Read the external database Secret; record what the user must fix when it is unusable."""
    external = store.spec.database.external
    if external is None or not store.spec.database.is_external:
        return None
    where = f"Secret {store.namespace}/{external.secret_name} (spec.database.external.secretName)"
    values = await client.read_secret(store.namespace, external.secret_name)
    if values is None:
        problems.append(
            Problem(
                "ExternalSecretMissing",
                f"{where} does not exist: create it with keys {SECRET_KEYS_HINT}",
            )
        )
        return None
    missing = [key for key in builders.EXTERNAL_SECRET_KEYS if not values.get(key)]
    if missing:
        problems.append(
            Problem(
                "ExternalSecretInvalid",
                f"{where} lacks key(s) {', '.join(missing)}: add them (keys: {SECRET_KEYS_HINT})",
            )
        )
        return None
    facts = {key: values[key] for key in ExternalDatabaseFacts.model_fields if values.get(key)}
    try:
        return ExternalDatabaseFacts.model_validate(facts)
    except pydantic.ValidationError as exc:
        fields = ", ".join(str(error["loc"][0]) for error in exc.errors())
        problems.append(
            Problem("ExternalSecretInvalid", f"{where} has an invalid value for: {fields}")
        )
        return None


async def check_database_secret(
    client: kube.Kube, store: Bookstore, problems: list[Problem]
) -> bool:
    """Never make new database passwords for a volume initialized with the lost ones.

    PostgreSQL sets the passwords from `<name>-db` only when it initializes an empty volume,
    so a Secret generated again while the volume exists locks the services out. A Secret
    the user restored without an owner is used as it is (and outlives the Bookstore).
    True when the Secret is missing and may be generated (no volume yet).
    """
    if store.spec.database.is_external:
        return False
    name = store.child_name("db")
    secret = await client.get("v1", "Secret", store.namespace, name)
    claim = builders.postgres_claim_name(store, 0)
    keys = ", ".join(builders.DATABASE_SECRET_KEYS)
    restore = (
        f"restore Secret {store.namespace}/{name} with keys {keys} from a backup or your GitOps"
        " source (without metadata.ownerReferences, or the garbage collector deletes it), or delete"
        f" PersistentVolumeClaim/{claim} to start over with an empty database, which loses"
        " its data"
    )
    if secret is None:
        if await client.get("v1", "PersistentVolumeClaim", store.namespace, claim) is None:
            return True
        problems.append(
            Problem(
                "DatabaseCredentialsLost",
                f"Secret {store.namespace}/{name} is gone, but the database volume"
                f" PersistentVolumeClaim/{claim} still holds the data its passwords"
                f" protect; new passwords would lock the services out. To fix: {restore}",
            )
        )
        return False
    controllers = [
        ref for ref in secret["metadata"].get("ownerReferences") or [] if ref.get("controller")
    ]
    if controllers and not kube.is_owned(secret, store):
        problems.append(
            Problem(
                "ChildNotOwned",
                f"Secret/{name} exists but is not owned by this Bookstore; the operator leaves"
                " it alone: delete or rename it",
                "Degraded",
            )
        )
        return False
    values = {key for key, value in (secret.get("data") or {}).items() if value}
    missing = [key for key in builders.DATABASE_SECRET_KEYS if key not in values]
    if missing:
        problems.append(
            Problem(
                "DatabaseCredentialsInvalid",
                f"Secret {store.namespace}/{name} lacks key(s) {', '.join(missing)}: {restore}",
            )
        )
    return False


async def check_api_key_secret(
    client: kube.Kube, store: Bookstore, problems: list[Problem]
) -> None:
    """A user-named API key Secret must exist and hold the key the services read."""
    name = store.spec.auth.api_key_secret_name
    if not name:
        return
    where = f"Secret {store.namespace}/{name} (spec.auth.apiKeySecretName)"
    values = await client.read_secret(store.namespace, name)
    if values is None:
        problems.append(
            Problem(
                "ApiKeySecretMissing",
                f"{where} does not exist: create it with key {builders.API_KEY_SECRET_KEY}",
            )
        )
    elif not values.get(builders.API_KEY_SECRET_KEY):
        problems.append(
            Problem(
                "ApiKeySecretInvalid", f"{where} lacks key {builders.API_KEY_SECRET_KEY}: add it"
            )
        )
