"""The termination message of `migrate`: one JSON object that Kubernetes keeps in the
container's state (`terminated.message`), where the operator reads the outcome of a Job."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TERMINATION_MESSAGE_ENV = "TERMINATION_MESSAGE_PATH"
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"  # Kubernetes' default path
# Kubernetes keeps at most 4096 bytes of a container's termination message.
TERMINATION_MESSAGE_LIMIT = 4096
_ELLIPSIS = "…"


def termination_message_path() -> Path:
    """$TERMINATION_MESSAGE_PATH, else Kubernetes' default `/dev/termination-log`."""
    return Path(os.environ.get(TERMINATION_MESSAGE_ENV) or DEFAULT_TERMINATION_MESSAGE_PATH)


def render(payload: dict[str, Any]) -> str:
    """`payload` as one JSON object under the size limit: a long "message" keeps its end
    (the last lines of an error say the most)."""
    rendered = json.dumps(payload, ensure_ascii=False)
    message = payload.get("message")
    if len(rendered.encode()) <= TERMINATION_MESSAGE_LIMIT or not isinstance(message, str):
        return rendered
    without = len(json.dumps(payload | {"message": ""}, ensure_ascii=False).encode())
    budget = TERMINATION_MESSAGE_LIMIT - without - len(_ELLIPSIS.encode())
    # JSON escapes (newlines, quotes) may grow the text: shrink until the whole fits.
    keep = max(budget, 0)
    while keep > 0:
        tail = message.encode()[-keep:].decode(errors="ignore")
        rendered = json.dumps(payload | {"message": _ELLIPSIS + tail}, ensure_ascii=False)
        if len(rendered.encode()) <= TERMINATION_MESSAGE_LIMIT:
            return rendered
        keep -= max(len(rendered.encode()) - TERMINATION_MESSAGE_LIMIT, 1)
    return json.dumps(payload | {"message": _ELLIPSIS}, ensure_ascii=False)


def _writable(path: Path, *, may_create: bool) -> bool:
    """Whether the message can be written: the file is writable (Kubernetes mounts it in
    every container), or it may be created: absent, its directory writable."""
    if path.exists():
        return path.is_file() and os.access(path, os.W_OK)
    return may_create and path.parent.is_dir() and os.access(path.parent, os.W_OK)


def write_termination_message(payload: dict[str, Any]) -> None:
    """Write `payload` to the termination message file when there is one; never raises.

    The default path is only written when it exists (in a pod), so `migrate` run by hand, even
    as root, leaves no /dev/termination-log behind; a path set explicitly is created.
    """
    path = termination_message_path()
    try:
        if not _writable(path, may_create=bool(os.environ.get(TERMINATION_MESSAGE_ENV))):
            return
        path.write_text(render(payload), encoding="utf-8")
    except OSError as error:
        log.warning(
            "could not write the termination message",
            extra={"path": str(path), "error": type(error).__name__},
        )
