// まちキット 公開地図 / machikit public live map.
//
// Plain JavaScript with no build step and no framework: edit this file and
// reload the page. The sections, in order:
//    1. settings and texts   the server puts them into the page (config)
//    2. clock                "N分前" from the server's clock
//    3. in words             one vehicle or sensor as text
//    4. the map              Leaflet, one layer per kind (bus, garbage truck, ...)
//    5. markers              HTML markers that need no images
//    6. popups               details of one vehicle or gauge
//    7. snow gauge history   the last 24 hours, as a chart and a table
//    8. the list panel       everything on the map, for keyboards and screen readers
//    9. the data             adding, moving and removing items
//   10. loading over HTTP    the latest positions and readings (docs/api.md)
//   11. live stream          server-sent events; polling every 10 s when it is down
//   12. language             Japanese first, English on request
//   13. start
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

// --- 4. the map: tiles, layers, controls -------------------------------------

// Simple pictograms drawn in SVG: they need no image files and no fonts.
const SYMBOLS = {
  bus: '<path d="M6 2h12a3 3 0 0 1 3 3v12a2 2 0 0 1-1 1.7V21h-3v-2H7v2H4v-2.3A2 2 0 0 1 3 17V5a3 3 0 0 1 3-3zm0 3v6h12V5zm1.5 8.5a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm9 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z"/>',
  garbage_truck: '<path d="M1 5h13v10H1zm14 3h4l4 4.5V15h-8z"/><circle cx="5.5" cy="17.5" r="2.5"/><circle cx="18" cy="17.5" r="2.5"/>',
  stall: '<path d="M2 9 4 3h16l2 6zm2 2h16v10h-3v-6H7v6H4z"/>',
  snow_gauge: '<path d="M11 1h2v22h-2zM2.3 6.2l1-1.7 18.4 10.6-1 1.7zm0 11.6L20.7 7.2l1 1.7L3.3 19.5zM8 2.5 12 6l4-3.5 1.2 1.4L12 8.6 6.8 3.9zm0 19L12 18l4 3.5 1.2-1.4-5.2-4.7-5.2 4.7z"/>',
  sensor: '<path d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 4a6 6 0 1 1 0 12 6 6 0 0 1 0-12zm0 3a3 3 0 1 0 0 6 3 3 0 0 0 0-6z"/>',
};

function svgOf(kind) {
  return '<svg viewBox="0 0 24 24" aria-hidden="true">' + (SYMBOLS[kind] || SYMBOLS.sensor) + '</svg>';
}

// The coloured symbol alone (list rows, layer switch).
function symbolHtml(kind, stale) {
  const cls = 'mk mk-' + esc(kind) + (stale ? ' mk-stale' : '');
  return '<span class="' + cls + '"><span class="mk-symbol">' + svgOf(kind) + '</span></span>';
}

const map = L.map('map', { zoomControl: false });
const tiles = L.tileLayer(config.tiles.url, {
  attribution: config.tiles.attribution,
  maxZoom: config.tiles.max_zoom,
});
const groups = {};   // kind -> L.layerGroup, so each kind can be switched off
for (const kind of KINDS) groups[kind] = L.layerGroup();
const trackLayer = L.layerGroup();
let zoomControl = null;
let layerControl = null;

// Markers can only be added once the map has a view, so the layers join the
// map here: right away with a configured centre, or when the first data arrives.
function showMap(view) {
  if (view.bounds) {
    // Room for the labels under the markers and for the controls in the corners.
    map.fitBounds(view.bounds, {
      paddingTopLeft: [40, 70], paddingBottomRight: [70, 50], maxZoom: 16,
    });
  } else {
    map.setView(view.center, view.zoom);
  }
  if (map.hasLayer(tiles)) return;
  tiles.addTo(map);
  for (const kind of KINDS) groups[kind].addTo(map);
  trackLayer.addTo(map);
}

function fitToMarkers() {
  if (state.fitted || config.center) return;
  const points = [];
  for (const item of state.items.values()) {
    const at = latLngOf(item.feature);
    if (at) points.push(at);
  }
  if (points.length === 0) {
    // Nothing located yet: all of Japan, until something appears.
    if (!map.hasLayer(tiles)) showMap({ center: [37.5, 137.5], zoom: 5 });
    return;
  }
  state.fitted = true;
  if (points.length === 1) showMap({ center: points[0], zoom: config.zoom });
  else showMap({ bounds: L.latLngBounds(points) });
}

// Tiles come from the internet (GSI). When they cannot load, the markers and
// the list still work; a small notice says why the background is empty.
tiles.on('tileerror', () => setNotice('tile-notice', true));
tiles.on('tileload', () => setNotice('tile-notice', false));

function setNotice(id, shown) {
  const notice = document.getElementById(id);
  if (notice.hidden === !shown) return;
  notice.hidden = !shown;
  map.invalidateSize();   // the map's height changed
}

// Zoom buttons and the layer switch carry words, so they are rebuilt when the
// language or the kinds on the map change.
function buildControls() {
  if (zoomControl) zoomControl.remove();
  zoomControl = L.control.zoom({
    position: 'bottomright',   // near the thumb on a phone; the top stays free for popups
    zoomInTitle: text('map_zoom_in'),
    zoomOutTitle: text('map_zoom_out'),
  }).addTo(map);
  if (layerControl) layerControl.remove();
  const overlays = {};
  for (const kind of KINDS) {
    // The four kinds of the kit are always listed; plain sensors only when present.
    if (kind === 'sensor' && !hasKind('sensor')) continue;
    const name = '<span class="layer-name">' + symbolHtml(kind, false) + esc(kindName(kind)) + '</span>';
    overlays[name] = groups[kind];
  }
  layerControl = L.control.layers(null, overlays, { collapsed: true }).addTo(map);
  const toggle = layerControl.getContainer().querySelector('.leaflet-control-layers-toggle');
  toggle.title = text('map_layers');
  toggle.setAttribute('aria-label', text('map_layers'));
}

function hasKind(kind) {
  for (const item of state.items.values()) {
    if (item.feature.properties.kind === kind) return true;
  }
  return false;
}

// --- 5. markers --------------------------------------------------------------

// The marker is HTML (L.divIcon): it shows even when no image or tile loads.
function markerHtml(props) {
  let html = '<span class="mk mk-' + esc(props.kind) + (props.stale ? ' mk-stale' : '') + '">';
  if (isVehicle(props) && props.heading != null) {
    html += '<span class="mk-heading" style="transform: rotate(' + Number(props.heading) + 'deg)"></span>';
  }
  html += '<span class="mk-symbol">' + svgOf(props.kind) + '</span>';
  const depth = reading(props, 'snow_depth');
  if (depth) html += '<span class="mk-badge">' + esc(readingText(depth)) + '</span>';
  let label = esc(labelOf(props));
  if (props.stale) label += ' · ' + esc(ageText(props.t));  // greyed and with its age
  html += '<span class="mk-label">' + label + '</span></span>';
  return html;
}

function markerTitle(props) {
  return labelOf(props) + ' (' + kindName(props.kind) + ') ' + summary(props);
}

function makeIcon(props) {
  return L.divIcon({
    className: 'mk-icon', html: markerHtml(props), iconSize: [34, 34], iconAnchor: [17, 17],
    popupAnchor: [0, -18],
  });
}

// Draws or moves the marker of one item. The marker's element is patched in
// place (not re-created), so a keyboard user's focus stays on it.
function drawMarker(item) {
  const props = item.feature.properties;
  const at = latLngOf(item.feature);
  if (!at) {
    removeMarker(item);
    return;
  }
  if (!item.marker) {
    item.marker = L.marker(at, {
      icon: makeIcon(props), keyboard: true, title: markerTitle(props),
      riseOnHover: true, zIndexOffset: isVehicle(props) ? 1000 : 0,
    });
    item.marker.bindPopup(popupElement(item), {
      maxWidth: 300, minWidth: 220,
      autoPanPaddingTopLeft: [12, 64], autoPanPaddingBottomRight: [12, 12],  // 64: below the layer switch
    });
    item.marker.on('add', () => labelMarker(item));
    item.marker.on('popupopen', (event) => popupOpened(item, event.popup));
    item.marker.on('popupclose', (event) => popupClosed(item, event.popup));
    item.marker.addTo(groups[props.kind] || groups.sensor);
    return;
  }
  item.marker.setLatLng(at);
  refreshMarker(item);
}

function refreshMarker(item) {
  if (!item.marker) return;
  const props = item.feature.properties;
  const html = markerHtml(props);
  if (html !== item.marker.options.icon.options.html) {
    item.marker.options.icon = makeIcon(props);   // used if the layer is shown again
    const element = item.marker.getElement();
    if (element) element.innerHTML = html;
  }
  item.marker.options.title = markerTitle(props);
  labelMarker(item);
}

function labelMarker(item) {
  const element = item.marker && item.marker.getElement();
  if (!element) return;
  element.dataset.id = item.id;   // lets the browser tests find it
  element.title = item.marker.options.title;
  element.setAttribute('aria-label', item.marker.options.title);
}

function removeMarker(item) {
  if (!item.marker) return;
  if (state.openItem === item) map.closePopup();
  item.marker.remove();
  item.marker = null;
}

// --- 6. popups ---------------------------------------------------------------

// A popup has three parts: the title (can take the focus), the body (redrawn
// on every update) and, for snow gauges, the 24-hour history.
function popupElement(item) {
  const root = document.createElement('div');
  root.className = 'pop';
  root.innerHTML = '<h2 tabindex="-1"></h2><div class="pop-body"></div><div class="pop-history"></div>';
  item.popup = root;
  refreshPopup(item);
  return root;
}

function refreshPopup(item) {
  if (!item.popup) return;
  const props = item.feature.properties;
  item.popup.querySelector('h2').textContent = labelOf(props);
  let html = '<p class="muted">' + esc(kindName(props.kind)) + '</p>';
  if (props.stale) html += '<p class="stale-note">' + esc(text('map_stale')) + '</p>';
  if (isVehicle(props)) {
    if (speedText(props)) html += '<p>' + esc(speedText(props)) + '</p>';
  } else if (readingsOf(props).length) {
    html += '<dl>';
    for (const r of readingsOf(props)) {
      html += '<dt>' + esc(sensorName(r.sensor)) + '</dt><dd>' + esc(readingText(r)) + '</dd>';
    }
    html += '</dl>';
  }
  html += '<p>' + esc(updatedText(props)) + '</p>';
  if (hasReferenceValues(props)) html += '<p class="reference">' + esc(text('map_reference_note')) + '</p>';
  if (isVehicle(props) && state.openItem === item && item.track) {
    html += '<p class="muted">' + esc(text('map_track')) + '</p>';
  }
  item.popup.querySelector('.pop-body').innerHTML = html;
}

function popupOpened(item, popup) {
  state.openItem = item;
  // Never taller than the map (a phone held upright): the popup scrolls instead.
  popup.options.maxHeight = Math.max(150, map.getSize().y - 120);
  popup.update();
  const close = popup.getElement().querySelector('.leaflet-popup-close-button');
  if (close) {
    close.title = text('map_close');
    close.setAttribute('aria-label', text('map_close'));
  }
  // Opened from the keyboard (the marker or the list had the focus): move the
  // focus into the popup, so its content is read and Escape can close it.
  const marker = item.marker.getElement();
  if (state.focusPopup || document.activeElement === marker) {
    item.popup.querySelector('h2').focus({ preventScroll: true });
  }
  state.focusPopup = false;
  if (isVehicle(item.feature.properties)) loadTrack(item);
  if (reading(item.feature.properties, 'snow_depth')) loadHistory(item);
}

function popupClosed(item, popup) {
  trackLayer.clearLayers();
  item.track = null;
  if (state.openItem === item) state.openItem = null;
  // Give the focus back to the marker instead of losing it to the page.
  const hadFocus = popup.getElement().contains(document.activeElement) ||
    document.activeElement === document.body;
  const marker = item.marker && item.marker.getElement();
  if (hadFocus && marker) marker.focus({ preventScroll: true });
}

// The vehicle's last 30 minutes, drawn only while its popup is open.
async function loadTrack(item) {
  const id = item.id;
  try {
    const { data } = await getJson('/vehicles/' + encodeURIComponent(id) + '/track?minutes=30');
    if (state.openItem !== item || !data.geometry) return;
    const points = data.geometry.coordinates.map((c) => [c[1], c[0]]);
    trackLayer.clearLayers();
    item.track = L.polyline(points, {
      className: 'track track-' + item.feature.properties.kind, interactive: false,
    }).addTo(trackLayer);
    refreshPopup(item);
    updatePopup(item);   // one more line of text: lay the popup out again
  } catch (err) {
    console.warn('track of', id, err);   // the popup works without it
  }
}

function extendTrack(item) {
  const at = latLngOf(item.feature);
  if (item.track && at) item.track.addLatLng(at);
}

// --- 7. snow gauge history (24 h, hourly averages) ---------------------------

async function loadHistory(item) {
  if (item.history && Date.now() - item.history.loadedAt < HISTORY_MAX_AGE_MS) {
    drawHistory(item);
    return;
  }
  try {
    const { data } = await getJson('/sensors/' + encodeURIComponent(item.id) +
      '/history?sensor=snow_depth&hours=24&bucket=3600');
    item.history = { data, loadedAt: Date.now() };
  } catch (err) {
    console.warn('history of', item.id, err);
    item.history = { data: null, loadedAt: 0 };  // try again on the next opening
  }
  drawHistory(item);
}

function drawHistory(item) {
  if (!item.popup || !item.history) return;
  const data = item.history.data;
  let html = '<h3>' + esc(text('map_history_title')) + '</h3>';
  if (!data) {
    html += '<p>' + esc(text('map_history_failed')) + '</p>';
  } else if (!data.points.length) {
    html += '<p>' + esc(text('map_history_none')) + '</p>';
  } else {
    // The chart is for the eyes; the table below says the same in words.
    html += historyChart(data);
    html += '<details><summary>' + esc(text('map_history_table')) + '</summary><table>' +
      '<thead><tr><th scope="col">' + esc(text('map_history_time')) + '</th><th scope="col">' +
      esc(text('map_history_value')) + '</th></tr></thead><tbody>';
    for (const p of data.points.slice().reverse()) {
      html += '<tr><th scope="row">' + esc(shortTime(p)) + '</th><td>' +
        esc(formatNumber(p.avg, 1, true) + ' ' + unitText(data.unit)) + '</td></tr>';
    }
    html += '</tbody></table></details>';
  }
  const part = item.popup.querySelector('.pop-history');
  part.innerHTML = html;
  // Opening the table makes the popup taller: Leaflet must lay it out again
  // (it then scrolls inside instead of growing past the top of the map).
  const details = part.querySelector('details');
  if (details) details.addEventListener('toggle', () => updatePopup(item));
  updatePopup(item);
}

// Leaflet re-inserts the content when it lays a popup out again, which would
// drop the keyboard focus: put it back where it was.
function updatePopup(item) {
  if (!item.marker || !item.marker.isPopupOpen()) return;
  const focused = item.popup.contains(document.activeElement) ? document.activeElement : null;
  item.marker.getPopup().update();
  if (focused) focused.focus({ preventScroll: true });
}

// "11/26 08:00" in the town's time zone (taken from the ISO text the API sends).
function shortTime(point) {
  const iso = point.time || new Date(point.t).toISOString();
  return iso.slice(5, 7) + '/' + iso.slice(8, 10) + ' ' + iso.slice(11, 16);
}

function historyChart(data) {
  const width = 260, height = 90, left = 34, right = 6, top = 8, bottom = 18;
  const values = data.points.map((p) => p.avg);
  let low = Math.min(...values), high = Math.max(...values);
  if (high - low < 5) {   // a flat line stays flat: noise must not look like snowfall
    const middle = (high + low) / 2;
    low = middle - 2.5;
    high = middle + 2.5;
  }
  const from = data.from, to = Math.max(data.to, from + 1);
  const x = (t) => left + (t - from) / (to - from) * (width - left - right);
  const y = (v) => top + (high - v) / (high - low) * (height - top - bottom);
  const line = data.points.map((p) => x(p.t).toFixed(1) + ',' + y(p.avg).toFixed(1)).join(' ');
  const dots = data.points.map((p) =>
    '<circle class="dot" r="2" cx="' + x(p.t).toFixed(1) + '" cy="' + y(p.avg).toFixed(1) + '"/>').join('');
  const first = data.points[0], last = data.points[data.points.length - 1];
  return '<svg class="chart" viewBox="0 0 ' + width + ' ' + height + '" aria-hidden="true">' +
    '<line class="axis" x1="' + left + '" y1="' + (height - bottom) + '" x2="' + (width - right) +
    '" y2="' + (height - bottom) + '"/>' +
    '<text x="' + (left - 4) + '" y="' + (top + 4) + '" text-anchor="end">' + formatNumber(high, 0) + '</text>' +
    '<text x="' + (left - 4) + '" y="' + (height - bottom) + '" text-anchor="end">' + formatNumber(low, 0) + '</text>' +
    '<text x="' + left + '" y="' + (height - 4) + '">' + esc(shortTime(first).slice(6)) + '</text>' +
    '<text x="' + (width - right) + '" y="' + (height - 4) + '" text-anchor="end">' +
    esc(shortTime(last).slice(6)) + '</text>' +
    '<polyline class="line" points="' + line + '"/>' + dots + '</svg>';
}

// --- 8. the list panel: everything on the map, in words ----------------------

const panel = document.getElementById('list-panel');
const listToggle = document.getElementById('list-toggle');
const sections = {};   // kind -> {section, heading, list}

function buildListSections() {
  const holder = document.getElementById('list-sections');
  for (const kind of KINDS) {
    const section = document.createElement('section');
    section.hidden = true;
    section.innerHTML = '<h3></h3><ul></ul>';
    holder.appendChild(section);
    sections[kind] = { section, heading: section.querySelector('h3'), list: section.querySelector('ul') };
  }
}

// The row of one item is made once and then only its words change, so the
// keyboard focus stays on its button while the bus moves.
function drawListItem(item) {
  const props = item.feature.properties;
  const where = sections[props.kind] || sections.sensor;
  if (!item.row) {
    item.row = document.createElement('li');
    item.row.innerHTML = '<button type="button" class="item-button"></button><p class="item-meta"></p>';
    item.row.querySelector('button').addEventListener('click', () => showOnMap(item));
  }
  if (item.row.parentNode !== where.list) insertSorted(where.list, item);
  const button = item.row.querySelector('button');
  const located = Boolean(latLngOf(item.feature));
  button.disabled = !located;
  button.className = located ? 'item-button' : 'item-button item-plain';
  button.innerHTML = '<span class="item-symbol">' + symbolHtml(props.kind, props.stale) + '</span>' +
    '<span>' + esc(labelOf(props)) + '</span>' +
    '<span class="sr-only">' + esc(located ? text('map_show_on_map') : text('map_no_location')) + '</span>';
  item.row.className = props.stale ? 'is-stale' : '';
  item.row.querySelector('.item-meta').textContent = summary(props);
}

function insertSorted(list, item) {
  const label = labelOf(item.feature.properties);
  const after = [...list.children].find((row) => row.dataset.label.localeCompare(label, 'ja') > 0);
  item.row.dataset.label = label;
  list.insertBefore(item.row, after || null);
}

function refreshListHeadings() {
  for (const kind of KINDS) {
    const count = sections[kind].list.children.length;
    sections[kind].section.hidden = count === 0;
    sections[kind].heading.textContent = kindName(kind) + ' (' + count + ')';
  }
  const empty = document.getElementById('list-empty');
  empty.hidden = state.haveData && state.items.size > 0;
  empty.textContent = text(state.haveData ? 'map_empty' : 'map_loading');
}

function showOnMap(item) {
  const at = latLngOf(item.feature);
  if (!at || !item.marker) return;
  if (!wideScreen()) setPanel(false, false);   // on a phone the list covers the map
  // A switched-off layer is switched on again: the user asked to see this one.
  const group = groups[item.feature.properties.kind] || groups.sensor;
  if (!map.hasLayer(group)) group.addTo(map);
  map.setView(at, Math.max(map.getZoom() || 0, 16), { animate: false });
  state.focusPopup = true;
  item.marker.openPopup();
}

function wideScreen() {
  return window.matchMedia('(min-width: 900px)').matches;
}

function setPanel(open, moveFocus) {
  panel.hidden = !open;
  listToggle.setAttribute('aria-expanded', String(open));
  map.invalidateSize();   // on a wide screen the map got narrower or wider
  if (!moveFocus) return;
  if (open) {
    document.getElementById('list-title').focus();
  } else {
    listToggle.focus();
  }
}

listToggle.addEventListener('click', () => setPanel(panel.hidden, true));
document.getElementById('list-close').addEventListener('click', () => setPanel(false, true));

document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return;
  const popup = document.querySelector('.leaflet-popup');
  if (popup && popup.contains(document.activeElement)) {
    map.closePopup();
  } else if (!panel.hidden && panel.contains(document.activeElement)) {
    setPanel(false, true);
  }
});

// --- 9. the data: one item per vehicle or sensor -----------------------------

function featureId(feature) {
  return feature.id != null ? String(feature.id) : String(feature.properties.id);
}

function upsert(feature) {
  const id = featureId(feature);
  let item = state.items.get(id);
  // A kind never changes in practice; if it does, start the item afresh.
  if (item && item.feature.properties.kind !== feature.properties.kind) {
    remove(id);
    item = null;
  }
  // Older data never moves a marker backwards (a cached reply, a late event).
  if (item && feature.properties.t < item.feature.properties.t) return;
  if (!item) {
    item = { id };
    state.items.set(id, item);
  }
  item.feature = feature;
  drawMarker(item);
  drawListItem(item);
  refreshPopup(item);
  if (state.openItem === item) extendTrack(item);
}

function remove(id) {
  const item = state.items.get(id);
  if (!item) return;
  removeMarker(item);
  if (item.row) item.row.remove();
  state.items.delete(id);
}

// A full picture (first load, stream snapshot, poll): what is missing is gone.
function replaceAll(vehicles, sensors) {
  const seen = new Set();
  const before = kindsKey();
  for (const feature of [...(vehicles ? vehicles.features : []), ...(sensors ? sensors.features : [])]) {
    upsert(feature);
    seen.add(featureId(feature));
  }
  for (const id of [...state.items.keys()]) {
    const group = state.items.get(id).feature.properties.kind;
    const covered = VEHICLE_KINDS.includes(group) ? vehicles : sensors;
    if (covered && !seen.has(id)) remove(id);
  }
  afterChange(before);
}

// A stream update: only what changed, plus the ids to take away.
function applyUpdate(update) {
  const before = kindsKey();
  for (const feature of [...(update.vehicles || []), ...(update.sensors || [])]) upsert(feature);
  for (const id of update.removed || []) remove(String(id));
  afterChange(before);
}

function kindsKey() {
  return hasKind('sensor') ? 'with-sensor' : 'without-sensor';
}

function afterChange(kindsBefore) {
  state.haveData = true;
  setNotice('load-notice', false);
  fitToMarkers();
  refreshListHeadings();
  if (kindsKey() !== kindsBefore) buildControls();
}

// --- 10. loading over HTTP ---------------------------------------------------

async function getJson(path) {
  const response = await fetch(config.api + path, { headers: { Accept: 'application/json' } });
  if (!response.ok) throw new Error(path + ': HTTP ' + response.status);
  return { data: await response.json(), response };
}

async function loadAll() {
  try {
    const [vehicles, sensors] = await Promise.all([getJson('/vehicles'), getJson('/sensors')]);
    learnClockFromResponse(vehicles.response);
    if (!state.live) replaceAll(vehicles.data, sensors.data);  // the stream may be newer
    return true;
  } catch (err) {
    console.warn('load failed', err);
    if (!state.haveData) {
      setNotice('load-notice', true);
      fitToMarkers();   // an empty map of Japan rather than a blank page
    }
    return false;
  }
}

// --- 11. live stream, and polling when it stays down -------------------------

let stream = null;
let reopenTimer = null;
let pollTimer = null;
let downTimer = null;

function openStream() {
  clearTimeout(reopenTimer);
  if (stream) stream.close();
  stream = new EventSource(config.api + '/live');
  stream.addEventListener('snapshot', (event) => {
    const snapshot = JSON.parse(event.data);
    learnClockFromStream(snapshot.now_ms);
    state.live = true;
    stopPolling();
    replaceAll(snapshot.vehicles, snapshot.sensors);
    setConnection('live');
  });
  stream.addEventListener('update', (event) => {
    const update = JSON.parse(event.data);
    learnClockFromStream(update.now_ms);
    applyUpdate(update);
  });
  stream.addEventListener('error', () => {
    state.live = false;
    if (!pollTimer) setConnection('down');
    // The browser retries by itself (after the server's "retry: 3000") unless
    // the server answered with an error; then the stream is CLOSED and we retry.
    if (stream.readyState === EventSource.CLOSED) {
      clearTimeout(reopenTimer);
      reopenTimer = setTimeout(openStream, 5000 + Math.random() * 5000);  // not all phones at once
    }
    if (!downTimer && !pollTimer) {
      downTimer = setTimeout(startPolling, STREAM_GRACE_MS);
    }
  });
}

function startPolling() {
  downTimer = null;
  if (state.live || pollTimer) return;
  let round = 0;
  const poll = async () => {
    // Vehicles move: every time. Gauges report hourly: every sixth time is plenty.
    try {
      const vehicles = await getJson('/vehicles');
      learnClockFromResponse(vehicles.response);
      const sensors = round % 6 === 0 ? await getJson('/sensors') : null;
      if (state.live) return;
      replaceAll(vehicles.data, sensors && sensors.data);
      setConnection('polling');
    } catch (err) {
      console.warn('poll failed', err);
      if (!state.live) setConnection('offline');
    }
    round += 1;
  };
  poll();
  pollTimer = setInterval(poll, POLL_EVERY_MS);
}

function stopPolling() {
  clearTimeout(downTimer);
  downTimer = null;
  clearInterval(pollTimer);
  pollTimer = null;
}

function setConnection(name) {
  state.connection = name;
  const element = document.getElementById('connection');
  element.dataset.state = name;
  const words = text('map_conn_' + name);
  if (element.textContent !== words) element.textContent = words;  // announced only on change
}

// A phone that wakes up (tab shown again) gets its stream back at once.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && stream && stream.readyState === EventSource.CLOSED) {
    openStream();
  }
});

// Every 10 s: new "N分前" everywhere. Only words change; nothing moves.
function tick() {
  for (const item of state.items.values()) {
    refreshMarker(item);
    item.row.querySelector('.item-meta').textContent = summary(item.feature.properties);
    if (state.openItem === item) refreshPopup(item);
  }
}

// --- 12. language: Japanese first, English on request ------------------------

function initialLanguage() {
  const asked = new URLSearchParams(window.location.search).get('lang');
  if (asked === 'en' || asked === 'ja') return asked;
  try {
    return window.localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'ja';
  } catch (err) {
    return 'ja';   // storage can be off (private mode): Japanese
  }
}

function applyLanguage(lang) {
  state.lang = lang;
  document.documentElement.lang = lang;
  const title = (config.title && (config.title[lang] || config.title.ja)) || '';
  document.title = title;
  document.getElementById('page-title').textContent = title;
  for (const element of document.querySelectorAll('[data-text]')) {
    element.textContent = text(element.dataset.text);
  }
  for (const element of document.querySelectorAll('[data-label]')) {
    element.setAttribute('aria-label', text(element.dataset.label));
  }
  // The switch names the other language, in that language.
  document.getElementById('lang-switch').lang = lang === 'ja' ? 'en' : 'ja';
  buildControls();
  for (const item of state.items.values()) {
    refreshMarker(item);
    drawListItem(item);
    refreshPopup(item);
    if (item.history && state.openItem === item) drawHistory(item);
  }
  refreshListHeadings();
  setConnection(state.connection);
}

document.getElementById('lang-switch').addEventListener('click', () => {
  const lang = state.lang === 'ja' ? 'en' : 'ja';
  try {
    window.localStorage.setItem(LANG_KEY, lang);
  } catch (err) {
    // not kept, but the switch still works for this visit
  }
  // A ?lang= in the address would win on the next reload: keep it in step.
  const url = new URL(window.location.href);
  if (url.searchParams.has('lang')) {
    url.searchParams.set('lang', lang);
    window.history.replaceState(null, '', url);
  }
  applyLanguage(lang);
});

// --- 13. start ---------------------------------------------------------------

buildListSections();
applyLanguage(initialLanguage());
if (config.center) showMap({ center: config.center, zoom: config.zoom });
if (wideScreen()) setPanel(true, false);   // a desktop has room for the list
setConnection('connecting');
loadAll();
openStream();
setInterval(tick, TICK_MS);

// For the browser tests, and for anyone curious: type machikitMap in the
// browser's console to look at the map and the data.
window.machikitMap = { map, state };
