"""GPS on the Raspberry Pi: read the receiver's NMEA lines, keep good fixes, decide when to report.

nmea.py turns serial lines into fixes, quality.py drops the bad ones, reporting.py decides which
ones to publish, and check.py runs a whole recorded log through all three (`machikit pi gps-check`).
"""
