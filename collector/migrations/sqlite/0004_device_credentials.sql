-- Per-device MQTT credentials (machikit device add): the broker user name and the
-- Mosquitto $7$ PBKDF2-SHA512 hash of its password. The plain password is never stored.
-- SQLite cannot add a UNIQUE column, so the uniqueness is an index (NULLs stay distinct).
ALTER TABLE devices ADD COLUMN mqtt_user TEXT;
ALTER TABLE devices ADD COLUMN password_hash TEXT;
ALTER TABLE devices ADD COLUMN password_changed_at INTEGER;
CREATE UNIQUE INDEX devices_mqtt_user ON devices (mqtt_user);
