"""Grafana dashboards on TimescaleDB (issue 7): models, macros, push and export.

dashboards.py builds the JSON models, queries.py holds every panel's SQL, macros.py
expands Grafana's SQL macros so tests can run that SQL on a real database.
"""
