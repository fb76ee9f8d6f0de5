"""Catalog schema revisions."""
