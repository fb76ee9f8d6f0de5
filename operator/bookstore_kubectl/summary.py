"""`status`: one screen about a Bookstore, from a cluster.Snapshot (pure: text out)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bookstore_kubectl.cluster import Obj, Snapshot, event_time, name_of
from bookstore_kubectl.diagnosis import COMPONENTS
from bookstore_kubectl.pods import clip

LAST_EVENTS = 10
LAST_BACKUPS = 5


def render_status(snap: Snapshot, now: datetime.datetime) -> str:
    """The summary `kubectl bookstore status NAME` prints."""
    sections = [
        _overview(snap),
        _conditions(snap, now),
        _components(snap),
        _endpoints(snap),
        _jobs(snap, now),
        _backups(snap, now),
        _events(snap, now),
    ]
    if snap.unreadable:
        sections.append(f"Not shown (not allowed to list): {', '.join(snap.unreadable)}")
    return "\n\n".join(s for s in sections if s) + "\n"


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Columns padded to their widest cell (the last column is not padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        (
            indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def age(timestamp: str, now: datetime.datetime) -> str:
    """`kubectl get`'s AGE: 45s, 12m, 5h, 3d."""
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _overview(snap: Snapshot) -> str:
    meta, spec = snap.bookstore["metadata"], snap.bookstore.get("spec") or {}
    status = snap.bookstore.get("status") or {}
    rows = [
        ["Bookstore", f"{snap.namespace}/{snap.name}"],
        ["Phase", str(status.get("phase") or "(no status yet)")],
        [
            "Generation",
            f"{meta.get('generation', '?')} (observed {status.get('observedGeneration', '-')})",
        ],
    ]
    versions = [f"spec {spec.get('version') or '(operator default)'}"]
    versions.append(f"serving {status.get('version') or '-'}")
    if status.get("targetVersion"):
        versions.append(f"target {status['targetVersion']}")
    if status.get("rolledBackFrom"):
        versions.append(f"rolled back from {status['rolledBackFrom']}")
    rows.append(["Version", ", ".join(versions)])
    if spec.get("image"):
        rows.append(["Image", str(spec["image"])])
    revisions = (status.get("database") or {}).get("schemaRevision") or {}
    if revisions:
        rows.append(["Schema", ", ".join(f"{k} {v}" for k, v in sorted(revisions.items()))])
    if spec.get("paused"):
        rows.append(["Paused", "yes: the operator changes nothing"])
    if meta.get("deletionTimestamp"):
        rows.append(["Deleting", f"since {meta['deletionTimestamp']}"])
    return table(rows, indent="")


def _conditions(snap: Snapshot, now: datetime.datetime) -> str:
    conditions = (snap.bookstore.get("status") or {}).get("conditions") or []
    if not conditions:
        return "Conditions: none yet"
    rows = [["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]]
    rows += [
        [
            str(c.get("type")),
            str(c.get("status")),
            str(c.get("reason") or ""),
            age(str(c.get("lastTransitionTime") or ""), now),
            clip(c.get("message") or "", 120),
        ]
        for c in conditions
    ]
    return "Conditions:\n" + table(rows)


def _components(snap: Snapshot) -> str:
    rows = [["COMPONENT", "WORKLOAD", "READY", "UP-TO-DATE", "AUTOSCALING", "IMAGE"]]
    spec = snap.bookstore.get("spec") or {}
    for component in COMPONENTS:
        workload = snap.workload(component)
        external = ((spec.get("database") or {}).get("external") or {}).get("secretName")
        if component == "database" and external:
            rows.append([component, f"external (Secret {external})", "-", "-", "-", "-"])
            continue
        if workload is None:
            rows.append([component, "(missing)", "-", "-", "-", "-"])
            continue
        status = workload.get("status") or {}
        desired = (workload.get("spec") or {}).get("replicas", status.get("replicas", 1))
        rows.append(
            [
                component,
                f"{workload['kind']}/{name_of(workload)}",
                f"{status.get('readyReplicas') or 0}/{desired}",
                str(status.get("updatedReplicas", status.get("currentReplicas", 0)) or 0),
                _autoscaler(snap, name_of(workload)),
                _images(workload),
            ]
        )
    return "Components:\n" + table(rows)


def _autoscaler(snap: Snapshot, target: str) -> str:
    hpa = next(
        (
            h
            for h in snap.autoscalers
            if ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == target
        ),
        None,
    )
    if hpa is None:
        return "off"
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    return (
        f"{spec.get('minReplicas', 1)}..{spec.get('maxReplicas', '?')}"
        f" (now {status.get('currentReplicas', '?')}, wants {status.get('desiredReplicas', '?')})"
    )


def _images(workload: Obj) -> str:
    pod = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    return ", ".join(sorted({str(c.get("image")) for c in pod.get("containers") or []}))


def _endpoints(snap: Snapshot) -> str:
    status = snap.bookstore.get("status") or {}
    rows = [["NAME", "URL"]]
    for component, url in sorted((status.get("endpoints") or {}).items()):
        rows.append([str(component), str(url)])
    for ingress in snap.ingresses:
        rows.extend(_ingress_rows(ingress))
    if len(rows) == 1:
        for service in snap.services:
            rows.append([name_of(service), _service_url(snap, service)])
    return "Endpoints:\n" + table(rows) if len(rows) > 1 else "Endpoints: none yet"


def _service_url(snap: Snapshot, service: Obj) -> str:
    ports = (service.get("spec") or {}).get("ports") or [{}]
    return f"http://{name_of(service)}.{snap.namespace}.svc:{ports[0].get('port', '?')}"


def _ingress_rows(ingress: Obj) -> Iterable[list[str]]:
    spec = ingress.get("spec") or {}
    tls_hosts = {h for t in spec.get("tls") or [] for h in t.get("hosts") or []}
    addresses = [
        str(i.get("hostname") or i.get("ip"))
        for i in ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ]
    for rule in spec.get("rules") or []:
        host = rule.get("host") or (addresses[0] if addresses else "*")
        scheme = "https" if rule.get("host") in tls_hosts else "http"
        for path in (rule.get("http") or {}).get("paths") or []:
            address = f" (address {', '.join(addresses)})" if addresses else " (no address yet)"
            yield [
                f"ingress {name_of(ingress)}",
                f"{scheme}://{host}{path.get('path', '/')}{address}",
            ]


def _jobs(snap: Snapshot, now: datetime.datetime) -> str:
    """The migration and restore Jobs (backup Jobs show through their BookstoreBackups)."""
    jobs = [j for j in snap.jobs if not name_of(j).endswith("-dump")]
    if not jobs:
        return ""
    rows = [["JOB", "STATE", "AGE", "MESSAGE"]]
    for job in sorted(jobs, key=_created):
        status = job.get("status") or {}
        done = [
            c
            for c in status.get("conditions") or []
            if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        ]
        state = (
            str(done[-1]["type"]) if done else ("Running" if status.get("active") else "Pending")
        )
        message = f"{done[-1].get('reason', '')}: {done[-1].get('message', '')}" if done else ""
        rows.append([name_of(job), state, age(_created(job), now), clip(message.strip(": "), 80)])
    return "Jobs:\n" + table(rows)


def _backups(snap: Snapshot, now: datetime.datetime) -> str:
    backup = (snap.bookstore.get("status") or {}).get("backup") or {}
    if not snap.backups and not backup:
        return ""
    lines = ["Backups:"]
    for label, key in (
        ("last success", "lastSuccessfulBackup"),
        ("last failure", "lastFailedBackup"),
        ("next scheduled", "nextScheduledBackup"),
    ):
        entry = backup.get(key)
        if isinstance(entry, Mapping):
            named = f"{entry.get('name')} at " if entry.get("name") else ""
            lines.append(f"  {label}: {named}{entry.get('time', '?')}")
    schedule = ((snap.bookstore.get("spec") or {}).get("backup") or {}).get("schedule")
    if schedule:
        lines.append(f"  schedule: {schedule} (UTC)")
    newest = sorted(snap.backups, key=_created, reverse=True)[:LAST_BACKUPS]
    if newest:
        rows = [["NAME", "PHASE", "SIZE", "AGE", "MESSAGE"]]
        rows += [
            [
                name_of(b),
                str((b.get("status") or {}).get("phase") or "Pending"),
                str((b.get("status") or {}).get("size") or ""),
                age(_created(b), now),
                clip((b.get("status") or {}).get("message") or "", 80),
            ]
            for b in newest
        ]
        more = len(snap.backups) - len(newest)
        lines.append(table(rows) + (f"\n  ... and {more} older" if more > 0 else ""))
    return "\n".join(lines)


def _created(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def _events(snap: Snapshot, now: datetime.datetime) -> str:
    events = sorted(snap.events, key=event_time)[-LAST_EVENTS:]
    if not events:
        return "Events: none recent"
    rows = [["AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
    for event in events:
        about = event.get("involvedObject") or {}
        count = int(event.get("count") or 1)
        rows.append(
            [
                age(event_time(event), now),
                str(event.get("type") or ""),
                str(event.get("reason") or "") + (f" (x{count})" if count > 1 else ""),
                f"{str(about.get('kind', '')).lower()}/{about.get('name', '')}",
                clip(event.get("message") or "", 100),
            ]
        )
    return "Events:\n" + table(rows)
