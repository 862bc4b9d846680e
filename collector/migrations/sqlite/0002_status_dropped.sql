-- How many messages a device had to delete unsent because its offline buffer was full
-- (a counter since the device was set up).
ALTER TABLE device_status ADD COLUMN dropped INTEGER;
