// まちキット 公開地図 / machikit public live map: popups: details of one vehicle or gauge, with the snow gauge's 24 h history.
// One of several plain scripts loaded in order by index.html (the order is explained there).
'use strict';

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
