-- A GPS tracker's status: satellites, HDOP, and whether its clock is set.
ALTER TABLE device_status ADD COLUMN clock_synced INTEGER;
ALTER TABLE device_status ADD COLUMN sats INTEGER;
ALTER TABLE device_status ADD COLUMN hdop REAL;
