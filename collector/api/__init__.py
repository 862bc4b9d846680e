"""The public side of the collector: read-only API, live stream and map page.

Everything here shows only what collector/policy.py allows (docs/api.md).
"""
