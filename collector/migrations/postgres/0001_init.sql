-- machikit schema v1 for PostgreSQL + TimescaleDB (Apache-2 edition features only:
-- hypertables, time_bucket, drop_chunks). Times are timestamptz (UTC).

CREATE EXTENSION IF NOT EXISTS timescaledb;

-- Device registry: every message must come from a device registered here.
CREATE TABLE devices (
    id          serial PRIMARY KEY,
    town        text NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL DEFAULT 'sensor',   -- bus, garbage_truck, stall, snow_gauge, printer_buzzer, sensor
    public      boolean NOT NULL DEFAULT false,   -- private unless configured public
    label       text,                             -- display name, e.g. 'バス1号車'
    settings    jsonb NOT NULL DEFAULT '{}',      -- service hours, depot area, ...
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    UNIQUE (town, name)
);

-- When a device without a synced clock booted, estimated at its first message:
-- its times are then boot start + uptime, the same on every redelivery.
CREATE TABLE device_boots (
    device_id   integer NOT NULL REFERENCES devices (id),
    boot        integer NOT NULL,
    started_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, boot)
);

CREATE TABLE positions (
    time          timestamptz NOT NULL,
    device_id     integer NOT NULL,
    seq           bigint NOT NULL,
    received_at   timestamptz NOT NULL,
    clock_synced  boolean NOT NULL,
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    alt           real,
    speed         real,      -- m/s
    heading       real,      -- degrees from north
    sats          smallint,
    hdop          real
);
SELECT create_hypertable('positions', by_range('time', INTERVAL '1 day'));
-- Replays and redeliveries carry the same (device, seq, time): stored once.
CREATE UNIQUE INDEX positions_once ON positions (device_id, seq, time);
CREATE INDEX positions_by_device ON positions (device_id, time DESC);

CREATE TABLE readings (
    time          timestamptz NOT NULL,
    device_id     integer NOT NULL,
    seq           bigint NOT NULL,
    received_at   timestamptz NOT NULL,
    clock_synced  boolean NOT NULL,
    sensor        text NOT NULL,
    value         double precision NOT NULL,
    unit          text NOT NULL,
    quality       text       -- good, reference (参考値), suspect
);
SELECT create_hypertable('readings', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX readings_once ON readings (device_id, seq, time);
CREATE INDEX readings_by_sensor ON readings (device_id, sensor, time DESC);

CREATE TABLE events (
    time          timestamptz NOT NULL,
    device_id     integer NOT NULL,
    seq           bigint NOT NULL,
    received_at   timestamptz NOT NULL,
    clock_synced  boolean NOT NULL,
    event         text NOT NULL,
    value         double precision,
    unit          text,
    text          text
);
SELECT create_hypertable('events', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX events_once ON events (device_id, seq, time);
CREATE INDEX events_by_device ON events (device_id, time DESC);

CREATE TABLE device_status (
    time          timestamptz NOT NULL,
    device_id     integer NOT NULL,
    received_at   timestamptz NOT NULL,
    state         text NOT NULL,     -- online, offline
    fw            text,
    boot          integer,
    uptime_ms     bigint,
    rssi          smallint,
    buffered      bigint,            -- readings waiting in the device's offline buffer
    heap          bigint,
    battery       real,
    reset_cause   text
);
SELECT create_hypertable('device_status', by_range('time', INTERVAL '7 days'));
CREATE UNIQUE INDEX device_status_once ON device_status (device_id, time);

-- Every message the collector refused, with the reason: nothing is dropped silently.
CREATE TABLE quarantine (
    received_at  timestamptz NOT NULL,
    topic        text NOT NULL,
    payload      bytea NOT NULL,
    reason       text NOT NULL,
    detail       text
);
SELECT create_hypertable('quarantine', by_range('received_at', INTERVAL '7 days'));
CREATE INDEX quarantine_by_reason ON quarantine (reason, received_at DESC);
