// まちキット 公開地図 / machikit public live map: the data: items added, moved and removed; loading over HTTP; the live stream.
// One of several plain scripts loaded in order by index.html (the order is explained there).
'use strict';

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
  focusFromAddress();
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
