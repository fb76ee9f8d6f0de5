"""Bookstore orders: customer orders that reserve stock at catalog over HTTP."""

__version__ = "0.1.0"
