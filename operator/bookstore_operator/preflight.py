"""Checks before kopf starts: credentials exist, and the peering object the replicas share.

Without them kopf would retry a failed login every minute with stacked tracebacks, or wait
forever, silently, for a peering object nobody created. Each failure here is one line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence

import kubernetes
from kubernetes.client.exceptions import ApiException

from bookstore_operator import kube

DEFAULT_PEERING = "bookstore-operator"
PEERING_API = "/apis/kopf.dev/v1"
# A peering check that gets no answer within this many seconds is a failed check.
CHECK_TIMEOUT_SECONDS = 15.0


class PreflightError(Exception):
    """A reason not to start, worded as the one line the user will read."""


@dataclasses.dataclass(frozen=True)
class Peering:
    """The peering object(s) a run coordinates through, and whether the name was chosen."""

    name: str
    namespaces: Sequence[str]  # empty: one ClusterKopfPeering; else a KopfPeering in each
    explicit: bool

    def describe(self, namespace: str = "") -> str:
        """`ClusterKopfPeering "x"` or `KopfPeering "x" in namespace "ns"`."""
        if namespace:
            return f'KopfPeering "{self.name}" in namespace "{namespace}"'
        return f'ClusterKopfPeering "{self.name}"'

    def how_to_create(self) -> str:
        """The command that creates the missing object(s) (the chart creates them too)."""
        kind = "KopfPeering" if self.namespaces else "ClusterKopfPeering"
        manifest = f"apiVersion: kopf.dev/v1\\nkind: {kind}\\nmetadata:\\n  name: {self.name}\\n"
        where = ""
        if self.namespaces:
            where = f" -n {self.namespaces[0] if len(self.namespaces) == 1 else 'EACH_NAMESPACE'}"
        return (
            f"kubectl apply -f crds/kopf-peering.yaml && printf '{manifest}' | "
            f"kubectl apply{where} -f -"
        )


def kubeconfig_paths() -> str:
    """Where the Kubernetes client looks for a kubeconfig, as the user would write it."""
    configured = os.environ.get("KUBECONFIG")
    if configured:
        return f"{configured} (from KUBECONFIG)"
    return f"{os.path.expanduser('~/.kube/config')} (KUBECONFIG is not set)"


def connect() -> kube.Kube:
    """A client with in-cluster or kubeconfig credentials; PreflightError names what was tried."""
    try:
        return kube.Kube.from_environment()
    except (kubernetes.config.ConfigException, OSError) as exc:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            in_cluster = "in-cluster credentials are unusable (KUBERNETES_SERVICE_HOST is set)"
        else:
            in_cluster = "not in a pod (KUBERNETES_SERVICE_HOST is not set)"
        raise PreflightError(
            f"no Kubernetes credentials: {in_cluster}, and no usable kubeconfig at "
            f"{kubeconfig_paths()}: {str(exc).rstrip('.')}. "
            "Run in a pod, or set KUBECONFIG to a kubeconfig."
        ) from None


async def missing_peerings(client: kube.Kube, peering: Peering) -> list[str]:
    """The peering objects that do not exist (a missing kopf.dev CRD counts as missing)."""
    missing = []
    for namespace in peering.namespaces or [""]:
        if namespace:
            path = f"{PEERING_API}/namespaces/{namespace}/kopfpeerings/{peering.name}"
        else:
            path = f"{PEERING_API}/clusterkopfpeerings/{peering.name}"
        try:
            await asyncio.wait_for(client.request("GET", path), CHECK_TIMEOUT_SECONDS)
        except ApiException as exc:
            if exc.status != 404:
                reason = f"{exc.status} {exc.reason}"
                raise PreflightError(
                    f"cannot read {peering.describe(namespace)}: {reason}"
                ) from None
            missing.append(peering.describe(namespace))
        except Exception as exc:  # a timeout, or urllib3's connection errors
            raise PreflightError(f"cannot reach the API server: {exc}") from None
    return missing


def peering_decision(peering: Peering, missing: Sequence[str]) -> str | None:
    """None to peer as asked; a warning to run alone; PreflightError to refuse to start.

    A missing object under the default name (the development path: `bookstore-operator`
    run by hand) means running alone, said once. A name given with --peering (the chart
    always gives one, and creates the object) means replicas rely on it: refuse instead,
    because two replicas that both fell back would both act.
    """
    if not missing:
        return None
    what = " and ".join(missing)
    if peering.explicit:
        raise PreflightError(
            f"{what} not found, and --peering {peering.name} needs it so that only one "
            f"replica acts. Create it ({peering.how_to_create()}), install the chart, "
            "or run with --standalone."
        )
    return (
        f"{what} not found: running standalone. Another operator running at the same time "
        f"would act too. To coordinate replicas, create it: {peering.how_to_create()} "
        "(the chart creates it); --standalone silences this warning."
    )


def check_peering(client: kube.Kube, peering: Peering) -> str | None:
    """Run the peering check once, before kopf's event loop exists (see peering_decision)."""
    return peering_decision(peering, asyncio.run(missing_peerings(client, peering)))
