// まちキット 公開地図 / machikit public live map: the map (Leaflet, one layer per kind) and its HTML markers.
// One of several plain scripts loaded in order by index.html (the order is explained there).
'use strict';

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
