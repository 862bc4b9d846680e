// まちキット 公開地図 / machikit public live map: the list panel: everything on the map, for keyboards and screen readers.
// One of several plain scripts loaded in order by index.html (the order is explained there).
'use strict';

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

// A device named in the address (#snow-01: a workshop label's QR code points here) is
// shown and opened once, as soon as it is on the map. A name not shown (private, out of
// service hours) leaves the ordinary view.
function focusFromAddress() {
  const name = decodeURIComponent(window.location.hash.slice(1));
  if (!name || state.focusedName === name) return;
  const item = state.items.get(name);
  if (!item) return;
  state.focusedName = name;
  showOnMap(item);
}

window.addEventListener('hashchange', focusFromAddress);

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
