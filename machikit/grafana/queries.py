"""The SQL behind every panel, written for Grafana's PostgreSQL data source.

Conventions: '$town' is the single-value town variable (Grafana escapes but does not
quote it); IN ($vehicle) etc. are multi-value device variables (Grafana quotes each
name). Times are timestamptz in UTC; days and hours of day are cut in JST
('Asia/Tokyo'), because a town's "today" starts at midnight Japan time.
"""

VEHICLE_KINDS = ("bus", "garbage_truck", "stall")
ONLINE_MINUTES = 10  # a vehicle silent for longer is not counted as running now

# --- fleet ---------------------------------------------------------------------

VEHICLES_ONLINE = f"""
-- Status is sent at connect ('online') and as the last will ('offline'), so "online now"
-- is: the latest status says online AND the vehicle sent something in the last minutes.
SELECT count(*) AS "online"
FROM devices d
JOIN LATERAL (SELECT state, time FROM device_status
              WHERE device_id = d.id ORDER BY time DESC LIMIT 1) s ON true
LEFT JOIN LATERAL (SELECT time FROM positions
                   WHERE device_id = d.id ORDER BY time DESC LIMIT 1) p ON true
WHERE d.town = '$town' AND d.revoked_at IS NULL AND d.name IN ($vehicle)
  AND s.state = 'online'
  AND greatest(s.time, p.time) > now() - interval '{ONLINE_MINUTES} minutes'
"""

VEHICLES_LAST_SEEN = """
SELECT d.name, coalesce(d.label, d.name) AS label, d.kind,
       p.time AS last_position, s.state,
       round(extract(epoch FROM now() - p.time) / 60) AS minutes_ago,
       round((p.speed * 3.6)::numeric, 1)::float AS speed_kmh, p.sats, p.hdop
FROM devices d
LEFT JOIN LATERAL (SELECT time, speed, sats, hdop FROM positions
                   WHERE device_id = d.id ORDER BY time DESC LIMIT 1) p ON true
LEFT JOIN LATERAL (SELECT state FROM device_status
                   WHERE device_id = d.id ORDER BY time DESC LIMIT 1) s ON true
WHERE d.town = '$town' AND d.revoked_at IS NULL AND d.name IN ($vehicle)
ORDER BY p.time DESC NULLS LAST, d.name
"""

POSITIONS_PER_MINUTE = """
SELECT $__timeGroupAlias(p.time, '1m'), d.name AS metric, count(*) AS positions
FROM positions p JOIN devices d ON d.id = p.device_id
WHERE $__timeFilter(p.time) AND d.town = '$town' AND d.name IN ($vehicle)
GROUP BY 1, 2
ORDER BY 1
"""

GPS_QUALITY = """
SELECT $__timeGroupAlias(p.time, $__interval),
       avg(p.sats)::float AS "衛星数 / satellites", avg(p.hdop)::float AS "HDOP"
FROM positions p JOIN devices d ON d.id = p.device_id
WHERE $__timeFilter(p.time) AND d.town = '$town' AND d.name IN ($vehicle)
GROUP BY 1
ORDER BY 1
"""

LATEST_POSITIONS = """
SELECT DISTINCT ON (p.device_id)
       d.name, coalesce(d.label, d.name) AS label, p.time, p.lat, p.lon,
       round((p.speed * 3.6)::numeric, 1)::float AS speed_kmh, p.heading
FROM positions p JOIN devices d ON d.id = p.device_id
WHERE $__timeFilter(p.time) AND d.town = '$town' AND d.name IN ($vehicle)
ORDER BY p.device_id, p.time DESC
"""

# --- snow ----------------------------------------------------------------------

SNOW_RISE_CM = 2  # the noise rule: see SNOWFALL_HOURLY and dashboards/README.md


def reading_series(sensor: str, variable: str) -> str:
    """One sensor's raw readings, one series per device."""
    return f"""
SELECT r.time AS "time", coalesce(d.label, d.name) AS metric, r.value AS {sensor}
FROM readings r JOIN devices d ON d.id = r.device_id
WHERE $__timeFilter(r.time) AND r.sensor = '{sensor}'
  AND d.town = '$town' AND d.name IN (${variable})
ORDER BY 1
"""


SNOWFALL_HOURLY = f"""
-- 降雪量 (reference): each hour's depth is the MEDIAN of its snow_depth readings, so
-- one bad echo cannot move it; an hour counts only when its median is more than
-- {SNOW_RISE_CM} cm above the previous hour's. The gauge jitters by about +-1 cm, so two
-- medians of unchanged snow differ by at most 2 cm: jitter alone never makes a bar.
-- Settling and melting (a fall in depth) count as 0, as on a 降雪量 chart.
WITH hourly AS (
    SELECT time_bucket('1 hour', r.time) AS hour, coalesce(d.label, d.name) AS gauge,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.value) AS depth
    FROM readings r JOIN devices d ON d.id = r.device_id
    WHERE r.sensor = 'snow_depth' AND d.town = '$town' AND d.name IN ($gauge)
      AND r.time BETWEEN $__timeFrom()::timestamptz - interval '1 hour' AND $__timeTo()
    GROUP BY 1, 2
), rises AS (
    SELECT hour, gauge, depth - lag(depth) OVER (PARTITION BY gauge ORDER BY hour) AS rise
    FROM hourly
)
SELECT hour AS "time", gauge AS metric,
       CASE WHEN rise > {SNOW_RISE_CM} THEN round(rise::numeric, 1)::float ELSE 0 END
           AS snowfall_cm
FROM rises
WHERE rise IS NOT NULL AND hour >= $__timeFrom()
ORDER BY 1
"""

# --- printer buzzer ----------------------------------------------------------------

ALARMS_PER_DAY = """
SELECT time_bucket('1 day', e.time, 'Asia/Tokyo') AS "time",
       coalesce(d.label, d.name) AS metric, count(*) AS alarms
FROM events e JOIN devices d ON d.id = e.device_id
WHERE $__timeFilter(e.time) AND e.event = 'paper_alarm'
  AND d.town = '$town' AND d.name IN ($printer)
GROUP BY 1, 2
ORDER BY 1
"""

# paper_taken's value: how many seconds the paper lay in the tray before it was taken.
LEFT_MINUTES_PER_DAY = """
SELECT time_bucket('1 day', e.time, 'Asia/Tokyo') AS "time",
       round((avg(e.value) / 60)::numeric, 1)::float AS "平均 / average",
       round((max(e.value) / 60)::numeric, 1)::float AS "最長 / longest"
FROM events e JOIN devices d ON d.id = e.device_id
WHERE $__timeFilter(e.time) AND e.event = 'paper_taken' AND e.value IS NOT NULL
  AND d.town = '$town' AND d.name IN ($printer)
GROUP BY 1
ORDER BY 1
"""

LEFT_DISTRIBUTION = """
WITH buckets (position, label, low, high) AS (VALUES
    (1, '1分未満 / <1 min', 0, 60), (2, '1–5分 / 1–5 min', 60, 300),
    (3, '5–15分 / 5–15 min', 300, 900), (4, '15–60分 / 15–60 min', 900, 3600),
    (5, '1時間以上 / 1 h+', 3600, NULL))
SELECT b.label AS "left_for", count(e.value) AS "papers"
FROM buckets b
LEFT JOIN (SELECT e.value FROM events e JOIN devices d ON d.id = e.device_id
           WHERE $__timeFilter(e.time) AND e.event = 'paper_taken'
             AND d.town = '$town' AND d.name IN ($printer)) e
       ON e.value >= b.low AND (b.high IS NULL OR e.value < b.high)
GROUP BY b.position, b.label
ORDER BY b.position
"""

BY_HOUR_OF_DAY = """
SELECT lpad(h::text, 2, '0') || '時' AS "hour",
       count(e.event) FILTER (WHERE e.event = 'paper_arrived') AS "印刷 / arrived",
       count(e.event) FILTER (WHERE e.event = 'paper_alarm') AS "取り忘れ / alarms"
FROM generate_series(0, 23) AS h
LEFT JOIN (SELECT e.event, e.time FROM events e JOIN devices d ON d.id = e.device_id
           WHERE $__timeFilter(e.time) AND e.event IN ('paper_arrived', 'paper_alarm')
             AND d.town = '$town' AND d.name IN ($printer)) e
       ON extract(hour FROM e.time AT TIME ZONE 'Asia/Tokyo') = h
GROUP BY h
ORDER BY h
"""

# --- device health ---------------------------------------------------------------

DEVICES_LAST_SEEN = """
SELECT d.name, coalesce(d.label, d.name) AS label, d.kind,
       greatest(s.time, p.time, r.time, e.time) AS last_seen, s.state, s.fw,
       s.battery, s.rssi, s.buffered, s.dropped
FROM devices d
LEFT JOIN LATERAL (SELECT * FROM device_status
                   WHERE device_id = d.id ORDER BY time DESC LIMIT 1) s ON true
LEFT JOIN LATERAL (SELECT time FROM positions
                   WHERE device_id = d.id ORDER BY time DESC LIMIT 1) p ON true
LEFT JOIN LATERAL (SELECT time FROM readings
                   WHERE device_id = d.id ORDER BY time DESC LIMIT 1) r ON true
LEFT JOIN LATERAL (SELECT time FROM events
                   WHERE device_id = d.id ORDER BY time DESC LIMIT 1) e ON true
WHERE d.town = '$town' AND d.revoked_at IS NULL AND d.name IN ($device)
ORDER BY last_seen DESC NULLS LAST, d.name
"""


def status_series(*columns: str) -> str:
    """Columns of device_status over time, one series per device and column."""
    values = ", ".join(f"s.{c}" for c in columns)
    return f"""
SELECT s.time AS "time", coalesce(d.label, d.name) AS metric, {values}
FROM device_status s JOIN devices d ON d.id = s.device_id
WHERE $__timeFilter(s.time) AND d.town = '$town' AND d.name IN ($device)
ORDER BY 1
"""


# A boot is counted on the JST day of its first status in the range, with the reset
# cause that status gave (power_on, watchdog, ...): a crash loop shows as a tall bar.
BOOTS_PER_DAY = """
WITH boots AS (
    SELECT s.device_id, s.boot, min(s.time) AS started,
           (array_agg(coalesce(s.reset_cause, 'unknown') ORDER BY s.time))[1] AS cause
    FROM device_status s JOIN devices d ON d.id = s.device_id
    WHERE $__timeFilter(s.time) AND s.boot IS NOT NULL
      AND d.town = '$town' AND d.name IN ($device)
    GROUP BY s.device_id, s.boot
)
SELECT time_bucket('1 day', started, 'Asia/Tokyo') AS "time", cause AS metric,
       count(*) AS boots
FROM boots
GROUP BY 1, 2
ORDER BY 1
"""

# Quarantined messages carry only their topic (machikit/v1/<town>/<device>/<channel>):
# this town's, plus any whose topic names no known town (misconfigured devices).
QUARANTINE_BY_REASON = """
SELECT q.reason, count(*) AS messages, max(q.received_at) AS last_received,
       (array_agg(q.topic ORDER BY q.received_at DESC))[1] AS last_topic
FROM quarantine q
WHERE $__timeFilter(q.received_at)
  AND (split_part(q.topic, '/', 3) = '$town'
       OR split_part(q.topic, '/', 3) NOT IN (SELECT town FROM devices))
GROUP BY q.reason
ORDER BY messages DESC, q.reason
"""
