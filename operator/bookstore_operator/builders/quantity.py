"""Kubernetes resource quantities ("500m", "1Gi", "1e3"): exact values and canonical spelling.

The API server stores every quantity in canonical form ("1024Mi" comes back as "1Gi", "0.5"
as "500m"), so children carry the canonical form too: otherwise the live object never
matches the desired one and every reconcile would patch it again.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>[KMGTPE]i)|(?P<decimal>[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?$"
)
_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exponent: suffix for suffix, exponent in _DECIMAL.items()} | {0: ""}
_NANO = Decimal("1e-9")


def _parse(value: str | int) -> tuple[Decimal, str]:
    """The exact value and the format (binary, decimal or exponent) the spelling implies."""
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number = Decimal(match["number"])
    if match["binary"]:
        return number * Decimal(1024) ** _BINARY.index(match["binary"]), "binary"
    if match["decimal"]:
        return number.scaleb(_DECIMAL[match["decimal"]]), "decimal"
    if match["exponent"]:
        return number.scaleb(int(match["exponent"])), "exponent"
    return number, "decimal"


def parse_quantity(value: str | int) -> Decimal:
    """The exact value of a quantity, so requests and limits can be compared like the API server."""
    return _parse(value)[0]


def canonical_quantity(value: str | int) -> str:
    """The spelling the API server stores (apimachinery's Quantity.CanonicalizeBytes)."""
    amount, form = _parse(value)
    amount = amount.quantize(_NANO, rounding=ROUND_CEILING)  # nano precision, rounded up
    if form == "binary" and abs(amount) >= 1024 and amount == amount.to_integral_value():
        whole, power = int(amount), 0
        while whole % 1024 == 0 and power < len(_BINARY) - 1 and whole != 0:
            whole, power = whole // 1024, power + 1
        return f"{whole}{_BINARY[power]}"
    if amount == 0:
        return "0"
    sign, digits, raw_exponent = amount.normalize().as_tuple()
    exponent = int(raw_exponent)  # finite: parsed from digits
    mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
    shift = exponent % 3  # exponents are multiples of 3, the mantissa stays whole
    mantissa, exponent = mantissa * 10**shift, exponent - shift
    if form == "exponent":
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    if exponent > max(_DECIMAL.values()):
        mantissa, exponent = mantissa * 10 ** (exponent - 18), 18
    return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"
