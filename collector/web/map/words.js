// まちキット 公開地図 / machikit public live map: settings, texts, the server's clock, and one vehicle or sensor in words.
// One of several plain scripts loaded in order by index.html (the order is explained there).
'use strict';

// --- 1. settings and texts ---------------------------------------------------

const config = JSON.parse(document.getElementById('machikit-config').textContent);

const VEHICLE_KINDS = ['bus', 'garbage_truck', 'stall'];
const KINDS = [...VEHICLE_KINDS, 'snow_gauge', 'sensor'];  // the list and layer order
const POLL_EVERY_MS = 10000;      // fallback when the live stream is down
const STREAM_GRACE_MS = 10000;    // how long the stream may be down before we poll
const TICK_MS = 10000;            // how often "N分前" is recomputed
const HISTORY_MAX_AGE_MS = 300000;
const LANG_KEY = 'machikit-lang';

const state = {
  lang: 'ja',
  clockOffsetMs: 0,         // the server's clock minus this phone's clock
  clockFromStream: false,   // the stream's now_ms is more exact than a Date header
  items: new Map(),         // id -> one vehicle or sensor: feature, marker, list row
  haveData: false,
  fitted: false,            // the view was fitted to the markers once
  live: false,              // the stream is connected
  connection: 'connecting',
  openItem: null,           // the item whose popup is open
  focusPopup: false,        // move the focus into the next popup (opened from the list)
};

// A text of the catalogue in the current language, with {names} filled in.
function text(key, values) {
  const pair = config.texts[key];
  if (!pair) return key;   // a missing text shows its key: easy to spot and fix
  let result = pair[state.lang === 'en' ? 1 : 0];
  for (const [name, value] of Object.entries(values || {})) {
    result = result.split('{' + name + '}').join(String(value));
  }
  return result;
}

// Labels come from the device registry: never put them into HTML unescaped.
function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
}

// Up to `digits` decimals ("35 cm", "35.2 cm"); `fixed` always shows them (tables).
function formatNumber(value, digits, fixed) {
  return new Intl.NumberFormat(state.lang, {
    maximumFractionDigits: digits, minimumFractionDigits: fixed ? digits : 0,
  }).format(value);
}

function unitText(unit) {
  return unit === 'degC' ? '°C' : unit;
}

// --- 2. clock: "N分前" must use the server's time (a phone's clock may be wrong) ---

function serverNow() {
  return Date.now() + state.clockOffsetMs;
}

function learnClockFromStream(nowMs) {
  if (typeof nowMs !== 'number') return;
  state.clockOffsetMs = nowMs - Date.now();
  state.clockFromStream = true;
}

function learnClockFromResponse(response) {
  if (state.clockFromStream) return;
  const date = Date.parse(response.headers.get('Date') || '');
  if (Number.isNaN(date)) return;
  const age = Number(response.headers.get('Age')) || 0;  // seconds spent in a cache
  // Date has whole seconds only: the middle of that second is the best guess.
  state.clockOffsetMs = date + age * 1000 + 500 - Date.now();
}

function ageText(t) {
  const seconds = Math.max(0, Math.floor((serverNow() - t) / 1000));
  if (seconds < 60) return text('map_age_seconds', { n: seconds });
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return text('map_age_minutes', { n: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return text('map_age_hours', { n: hours });
  return text('map_age_days', { n: Math.floor(hours / 24) });
}

function updatedText(props) {
  return text('map_updated', { age: ageText(props.t) });
}

// --- 3. one vehicle or sensor, in words --------------------------------------

function isVehicle(props) {
  return VEHICLE_KINDS.includes(props.kind);
}

function kindName(kind) {
  return text('map_kind_' + kind);
}

function labelOf(props) {
  return props.label || props.id;
}

function latLngOf(feature) {
  const g = feature.geometry;
  if (!g || g.type !== 'Point') return null;
  return L.latLng(g.coordinates[1], g.coordinates[0]);  // GeoJSON is [lon, lat]
}

function reading(props, sensor) {
  return (props.readings || []).find((r) => r.sensor === sensor) || null;
}

// The readings to show, snow depth first (it is why the gauge is there).
function readingsOf(props) {
  const first = (r) => (r.sensor === 'snow_depth' ? 0 : 1);
  return (props.readings || []).slice().sort((a, b) => first(a) - first(b));
}

function readingText(r) {
  return formatNumber(r.value, 1) + ' ' + unitText(r.unit);
}

function sensorName(sensor) {
  const key = 'map_sensor_' + sensor;
  return config.texts[key] ? text(key) : sensor;
}

function hasReferenceValues(props) {
  return (props.readings || []).some((r) => r.quality === 'reference');
}

function speedText(props) {
  if (props.speed == null) return '';
  return text('map_speed', { value: formatNumber(props.speed * 3.6, 0) });  // m/s -> km/h
}

// One line for the list and for screen readers: what it is and how fresh.
function summary(props) {
  const parts = [updatedText(props)];
  if (props.stale) parts.unshift(text('map_stale'));
  if (isVehicle(props)) {
    if (speedText(props)) parts.push(speedText(props));
  } else {
    for (const r of readingsOf(props)) {
      let part = sensorName(r.sensor) + ' ' + readingText(r);
      if (r.quality === 'reference') part += ' (' + text('map_reference_short') + ')';
      parts.push(part);
    }
  }
  return parts.join(' · ');
}
