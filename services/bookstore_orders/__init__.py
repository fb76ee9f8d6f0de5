"""Bookstore orders."""
