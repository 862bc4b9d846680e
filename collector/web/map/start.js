// まちキット 公開地図 / machikit public live map: language switch (Japanese first) and start-up.
// One of several plain scripts loaded in order by index.html (the order is explained there).
'use strict';

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
