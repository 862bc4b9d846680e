-- How many messages a device had to delete unsent because its offline buffer was full
-- (a counter since the device was set up). Grafana's device-health board shows it.
ALTER TABLE device_status ADD COLUMN dropped bigint;
