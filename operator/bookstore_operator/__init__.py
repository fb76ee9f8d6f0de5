"""Bookstore Operator: a kopf operator that runs complete online bookstores."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bookstore-operator")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
