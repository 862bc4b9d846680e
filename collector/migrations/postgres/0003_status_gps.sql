-- A GPS tracker's status says how its receiver is doing (satellites, HDOP) and whether its
-- clock is set (GPS or NTP time): the device-health dashboard shows all three.
ALTER TABLE device_status ADD COLUMN clock_synced boolean;
ALTER TABLE device_status ADD COLUMN sats smallint;
ALTER TABLE device_status ADD COLUMN hdop real;
