-- Per-device MQTT credentials (machikit device add): the broker user name and the
-- Mosquitto $7$ PBKDF2-SHA512 hash of its password. The plain password is never stored;
-- `machikit device password` makes a new one. revoked_at (0001) leaves a device out of
-- the broker's passwd/acl files.
ALTER TABLE devices ADD COLUMN mqtt_user text UNIQUE;
ALTER TABLE devices ADD COLUMN password_hash text;
ALTER TABLE devices ADD COLUMN password_changed_at timestamptz;
