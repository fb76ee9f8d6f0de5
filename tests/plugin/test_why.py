"""`kubectl bookstore why` against recorded API objects served over HTTP: each broken state is
traced to the right culprit, with the fix, and a healthy Bookstore is said to be healthy."""

from __future__ import annotations

import pathlib

import pytest

from tests.plugin.conftest import serving

ARROW = " → "

# scenario -> (the chain's steps, in order, as substrings of one line; words of its fix)
CULPRITS: dict[str, tuple[list[str], list[str]]] = {
    "image_pull": (
        [
            "Job downtown-catalog-migrate-0-9-0-3f9a1c: running",
            "pod downtown-catalog-migrate-0-9-0-3f9a1c-x7k2m: ImagePullBackOff",
            "image ghcr.io/bookstore-operator/bookstore:0.9.0 not found",
        ],
        ["check spec.version (0.9.0)", "spec.image"],
    ),
    "backups_failing": (
        [
            "LastBackupSucceeded: BackupsFailing",
            "BookstoreBackup downtown-202611280300: Failed",
            "Job downtown-202611280300-dump: Failed (BackoffLimitExceeded)",
            "pod downtown-202611280300-dump-k4v7c: container backup: terminated",
            "exit code 1: pg_dump: error: could not write to output file: No space left on",
        ],
        [
            "downtown-backups volume is full",
            "spec.backup.retention",
            "kubectl logs job/downtown-202611280300-dump -n shop",
            'bookstore.dev/backup-now="$(date +%s)"',
        ],
    ),
    "crash_loop": (
        [
            "orders: 0/2 ready",
            "pod downtown-orders-7c5b8d9f4-h2w8n: container orders: CrashLoopBackOff (restarted 7",
            "exit code 1 (Error)",
        ],
        ["kubectl logs downtown-orders-7c5b8d9f4-", "-c orders --previous -n shop"],
    ),
    "pending_pvc": (
        [
            "database: 0/1 ready",
            "pod downtown-postgres-0: Pending",
            "claim data-downtown-postgres-0: Pending",
            'storageclass.storage.k8s.io "fast-ssd" not found',
        ],
        ["StorageClass fast-ssd", "spec.database.storageClassName"],
    ),
    "missing_secret": (
        [
            "orders: 1/2 ready",
            "pod downtown-orders-7c5b8d9f4-p6j3s: container orders: CreateContainerConfigError",
            "Secret downtown-keys does not exist",
        ],
        ["create Secret downtown-keys with the key api-key", "spec.auth.apiKeySecretName"],
    ),
    "failed_migration": (
        [
            "Job downtown-orders-migrate-0-2-0-8c1e4b: Failed (BackoffLimitExceeded)",
            "pod downtown-orders-migrate-0-2-0-8c1e4b-7hz5k: container migrate: terminated",
            "exit code 1: failed (schema at 0005, head 0006): psycopg.errors.DuplicateColumn:"
            ' column "gift_note" of relation "orders" already exists',
        ],
        [
            "kubectl logs job/downtown-orders-migrate-0-2-0-8c1e4b -n shop",
            "set spec.version back to 0.1.0",
            "delete Job downtown-orders-migrate-0-2-0-8c1e4b",
        ],
    ),
}


def chain_line(out: str, first_step: str) -> tuple[list[str], str]:
    """The chain that starts with `first_step` (split at the arrows) and the fix under it."""
    lines = out.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith(first_step):
            fix = lines[index + 1].strip()
            assert fix.startswith("fix: "), out
            return line.strip().split(ARROW), fix
    pytest.fail(f"no chain starting with {first_step!r} in:\n{out}")


@pytest.mark.parametrize("scenario", sorted(CULPRITS))
async def test_why_names_the_culprit_and_the_fix(scenario: str, tmp_path: pathlib.Path) -> None:
    steps, fix_words = CULPRITS[scenario]
    async with serving(scenario, tmp_path) as served:
        code, out, err = await served.run("why", "downtown")
    assert (code, err) == (1, ""), out
    chain, fix = chain_line(out, steps[0])
    assert len(chain) == len(steps), chain
    for step, expected in zip(chain, steps, strict=True):
        assert expected in step, f"{expected!r} not in {step!r}"
    for word in fix_words:
        assert word in fix, f"{word!r} not in {fix!r}"
    assert "uptown" not in out  # another Bookstore's broken pod in the namespace


async def test_why_says_a_healthy_bookstore_is_healthy(tmp_path: pathlib.Path) -> None:
    async with serving("healthy", tmp_path) as served:
        code, out, err = await served.run("why", "downtown")
    assert (code, err) == (0, "")
    assert out == (
        "Bookstore shop/downtown: Ready True (AllComponentsReady), phase Ready\n"
        "Healthy: nothing to fix.\n"
    )


async def test_why_puts_the_operators_reason_first_for_a_missing_secret(
    tmp_path: pathlib.Path,
) -> None:
    async with serving("missing_secret", tmp_path) as served:
        code, out, _ = await served.run("why", "downtown")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "Bookstore shop/downtown: Ready False (ApiKeySecretMissing), phase Failed"
    assert lines[1].strip().startswith("Ready: ApiKeySecretMissing → Secret downtown-keys: "), out


async def test_why_leaves_a_healthy_component_out_of_a_database_problem(
    tmp_path: pathlib.Path,
) -> None:
    """While the database waits for its volume, the Deployments do not exist yet on purpose:
    the only chain is the database's."""
    async with serving("pending_pvc", tmp_path) as served:
        code, out, _ = await served.run("why", "downtown")
    assert code == 1
    assert [line for line in out.splitlines() if ARROW in line] == [
        line for line in out.splitlines() if line.strip().startswith("database: ")
    ], out
