"""Sample outputs of the backup Jobs' scripts (builders.backups), for unit and runtime tests."""

from __future__ import annotations

from typing import Any

UID_PLACEHOLDER = "<uid>"
# What the backup script reports for an in-cluster Bookstore (builders.backups.BACKUP_SCRIPT).
SUMMARY: dict[str, Any] = {
    "backup": "",
    "uid": UID_PLACEHOLDER,
    "method": "logical",
    "format": "custom",
    "pgDumpVersion": "16.4",
    "startedAt": "2025-01-01T03:00:01Z",
    "completedAt": "2025-01-01T03:00:09Z",
    "sizeBytes": 20192,
    "files": [
        {
            "database": "orders",
            "file": "orders.dump",
            "sizeBytes": 8886,
            "serverVersion": "16.4",
            "revisions": {"orders": "0005"},
        },
        {
            "database": "catalog",
            "file": "catalog.dump",
            "sizeBytes": 11306,
            "serverVersion": "16.4",
            "revisions": {"catalog": "0004"},
        },
    ],
}
