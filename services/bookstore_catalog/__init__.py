"""Bookstore catalog."""
