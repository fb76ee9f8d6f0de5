"""Bookstore common."""
