-- machikit schema v1 for SQLite (the embedded default). Same tables and columns
-- as PostgreSQL; times are INTEGER Unix milliseconds (UTC), booleans 0/1.

CREATE TABLE devices (
    id          INTEGER PRIMARY KEY,
    town        TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'sensor',
    public      INTEGER NOT NULL DEFAULT 0,
    label       TEXT,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    revoked_at  INTEGER,
    UNIQUE (town, name)
);

CREATE TABLE device_boots (
    device_id   INTEGER NOT NULL REFERENCES devices (id),
    boot        INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    PRIMARY KEY (device_id, boot)
);

CREATE TABLE positions (
    time INTEGER NOT NULL, device_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    received_at INTEGER NOT NULL, clock_synced INTEGER NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, alt REAL, speed REAL, heading REAL,
    sats INTEGER, hdop REAL
);
CREATE UNIQUE INDEX positions_once ON positions (device_id, seq, time);
CREATE INDEX positions_by_device ON positions (device_id, time DESC);
CREATE INDEX positions_by_time ON positions (time);

CREATE TABLE readings (
    time INTEGER NOT NULL, device_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    received_at INTEGER NOT NULL, clock_synced INTEGER NOT NULL,
    sensor TEXT NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL, quality TEXT
);
CREATE UNIQUE INDEX readings_once ON readings (device_id, seq, time);
CREATE INDEX readings_by_sensor ON readings (device_id, sensor, time DESC);
CREATE INDEX readings_by_time ON readings (time);

CREATE TABLE events (
    time INTEGER NOT NULL, device_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    received_at INTEGER NOT NULL, clock_synced INTEGER NOT NULL,
    event TEXT NOT NULL, value REAL, unit TEXT, text TEXT
);
CREATE UNIQUE INDEX events_once ON events (device_id, seq, time);
CREATE INDEX events_by_device ON events (device_id, time DESC);
CREATE INDEX events_by_time ON events (time);

CREATE TABLE device_status (
    time INTEGER NOT NULL, device_id INTEGER NOT NULL, received_at INTEGER NOT NULL,
    state TEXT NOT NULL, fw TEXT, boot INTEGER, uptime_ms INTEGER, rssi INTEGER,
    buffered INTEGER, heap INTEGER, battery REAL, reset_cause TEXT
);
CREATE UNIQUE INDEX device_status_once ON device_status (device_id, time);
CREATE INDEX device_status_by_time ON device_status (time);

CREATE TABLE quarantine (
    received_at INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    reason TEXT NOT NULL, detail TEXT
);
CREATE INDEX quarantine_by_reason ON quarantine (reason, received_at DESC);
CREATE INDEX quarantine_by_time ON quarantine (received_at);
