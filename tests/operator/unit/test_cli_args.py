"""The peering choice before kopf starts: run alone with a warning, peer, or refuse."""

from __future__ import annotations

import pytest
from bookstore_operator.__main__ import parse_args, run_arguments
from bookstore_operator.preflight import Peering, PreflightError, peering_decision


def test_peering_name_is_explicit_only_when_given() -> None:
    assert parse_args([]).peering is None
    assert run_arguments(parse_args([]))["peering_name"] == "bookstore-operator"
    assert parse_args(["--peering", "p"]).peering == "p"


def test_an_existing_peering_object_means_peering_without_a_word() -> None:
    assert peering_decision(Peering("p", [], explicit=True), []) is None
    assert peering_decision(Peering("p", [], explicit=False), []) is None


def test_a_missing_default_object_means_standalone_with_the_command_that_creates_it() -> None:
    peering = Peering("bookstore-operator", ["shop"], explicit=False)
    missing = ['KopfPeering "bookstore-operator" in namespace "shop"']
    warning = peering_decision(peering, missing)
    assert warning is not None
    assert warning.startswith(f"{missing[0]} not found: running standalone")
    assert "kind: KopfPeering" in warning
    assert "kubectl apply -n shop -f -" in warning


def test_a_missing_object_named_with_peering_refuses_to_start() -> None:
    peering = Peering("chart", [], explicit=True)
    with pytest.raises(PreflightError, match=r'ClusterKopfPeering "chart" not found.*--standalone'):
        peering_decision(peering, ['ClusterKopfPeering "chart"'])
