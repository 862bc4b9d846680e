"""Workshop mode: from a roster to labelled, flashed, online boards (issue 6, docs/workshop.md).

roster.py reads the participants' list, prepare.py registers one device per row
and prints the labels (labels.py), flashing.py flashes boards as they are
plugged in, status.py shows whose board is online.
"""
