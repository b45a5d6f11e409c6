// returnflow console: one small script, no library, no build step. Every value that comes from an
// event, a script, Klaviyo or the store is put on the page with textContent (el() below), never as
// HTML, so a customer named "<script>..." is shown as those characters. The CSRF token lives in this
// script's memory only and goes with every action (X-CSRF-Token).
'use strict';

let csrf = null;
let tail = null;
const $ = (id) => document.getElementById(id);

// An element with attributes and children; strings become text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
  return e;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

async function api(path, options) {
  const o = Object.assign({ credentials: 'same-origin', headers: {} }, options || {});
  if (o.method === 'POST') {
    o.headers['Content-Type'] = 'application/json';
    if (csrf) o.headers['X-CSRF-Token'] = csrf;
  }
  const r = await fetch(path, o);
  if (r.status === 401 && path !== '/api/login') { showLogin(); throw new Error('log in first'); }
  const type = r.headers.get('Content-Type') || '';
  const body = type.startsWith('application/json') ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.error) || r.statusText);
  return body;
}

// ---------------------------------------------------------------- login and tabs

function showLogin() {
  csrf = null;
  if (tail) { tail.close(); tail = null; }
  $('nav').hidden = true;
  for (const s of document.querySelectorAll('.tab')) s.hidden = true;
  $('login').hidden = false;
}

function showApp() {
  $('login').hidden = true;
  $('nav').hidden = false;
  show(location.hash.slice(1) || 'tenants');
}

const loaders = {};

function show(tab) {
  if (!loaders[tab]) tab = 'tenants';
  for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== tab;
  for (const b of document.querySelectorAll('nav button[data-tab]')) b.classList.toggle('active', b.dataset.tab === tab);
  if (location.hash !== '#' + tab) history.replaceState(null, '', '#' + tab);
  loaders[tab]().catch((e) => console.warn(tab, e));
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  try {
    const r = await api('/api/login', { method: 'POST', body: JSON.stringify({ token: $('token').value }) });
    csrf = r.csrf;
    $('token').value = '';
    showApp();
  } catch (e) {
    $('login-error').textContent = e.message;
  }
});

$('logout').addEventListener('click', async () => {
  try { await api('/api/logout', { method: 'POST', body: '{}' }); } finally { showLogin(); }
});

for (const b of document.querySelectorAll('nav button[data-tab]')) b.addEventListener('click', () => show(b.dataset.tab));

// In-page confirmation (no window.confirm: it can be styled, and read by a person before a click).
function confirmAction(text) {
  return new Promise((resolve) => {
    $('confirm-text').textContent = text;
    $('confirm').hidden = false;
    const done = (answer) => {
      $('confirm').hidden = true;
      $('confirm-yes').onclick = $('confirm-no').onclick = null;
      resolve(answer);
    };
    $('confirm-yes').onclick = () => done(true);
    $('confirm-no').onclick = () => done(false);
  });
}

// ---------------------------------------------------------------- counters (Prometheus text)

// name{labels} value lines -> [{name, labels: {}, value}]
function parseCounters(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const kv of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function sum(samples, name, filter) {
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (filter && !Object.entries(filter).every(([k, v]) => s.labels[k] === v)) continue;
    total += s.value;
  }
  return total;
}

let lastCounters = null;   // {at, samples}
async function counters() {
  const now = { at: Date.now(), samples: parseCounters(await api('/api/counters')) };
  const before = lastCounters;
  lastCounters = now;
  return { now, before };
}

function rate(c, name, filter) {
  if (!c.before) return null;
  const dt = (c.now.at - c.before.at) / 1000;
  return dt > 0 ? Math.max(0, (sum(c.now.samples, name, filter) - sum(c.before.samples, name, filter)) / dt) : null;
}

// ---------------------------------------------------------------- tenants

loaders.tenants = async () => {
  const [rows, c] = await Promise.all([api('/api/tenants'), counters()]);
  const body = $('tenant-rows');
  clear(body);
  for (const t of rows) {
    const mapped = rate(c, 'returnflow_events_total', { tenant: t.tenant });
    const delivered = rate(c, 'returnflow_requests_total', { tenant: t.tenant, outcome: 'delivered' });
    body.appendChild(el('tr', { class: 'tenant-row' },
      el('td', {}, t.tenant), el('td', {}, t.version || '-'),
      ...['journaled', 'deferred', 'failed', 'queued', 'retrying', 'delivered', 'dead'].map((k) => el('td', { class: 'num' }, t[k])),
      el('td', { class: t.paused ? 'error' : '' }, t.paused ? 'paused' : 'no'),
      el('td', { class: 'num' }, mapped === null ? '…' : mapped.toFixed(2)),
      el('td', { class: 'num' }, delivered === null ? '…' : delivered.toFixed(2)),
      el('td', { class: 'error' }, t.last_error)));
  }
};

setInterval(() => { if (csrf && !$('tenants').hidden) loaders.tenants().catch(() => {}); }, 3000);

// ---------------------------------------------------------------- search -> trace

function when(iso) { return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-'; }

function renderTrace(t) {
  const root = $('trace');
  clear(root);
  if (!t.events.length) { root.appendChild(el('p', { id: 'trace-empty' }, 'No webhook found for ' + t.query.value + '.')); return; }
  root.appendChild(el('p', { id: 'trace-summary' }, `${t.events.length} webhook(s); return ${t.returns.join(', ') || '-'}; customer ${t.emails.join(', ') || '-'}`));
  for (const e of t.events) {
    const box = el('div', { class: 'event', 'data-event': e.id },
      el('h3', {}, `${when(e.received_at)}  event:${e.id} ${e.trigger || '?'}`,
        el('small', {}, `  tenant ${e.tenant}, acked by `, el('span', { class: 'node' }, e.node || '?'))),
      el('div', {}, 'mapping: ', el('span', { class: e.state }, e.state),
        e.script_version ? ` by scripts ${e.script_version}` : '', e.reason ? ': ' + e.reason : ''));
    for (const r of e.requests) {
      box.appendChild(el('div', { class: 'request', 'data-request': r.id },
        `request:${r.id} ${r.method} ${r.path}`, r.metric ? ` (${r.metric})` : '', ' — ',
        el('span', { class: 'state ' + r.state }, r.state),
        ` after ${r.attempts} attempt(s)`, r.last_status ? `; Klaviyo answered ${r.last_status}` : '',
        r.next_at ? `; next try ${when(r.next_at)}` : '', r.schedule ? `; fired from schedule ${r.schedule}` : '',
        r.bulk_job ? el('span', { class: 'bulk' }, `; in a Klaviyo bulk job of ${r.bulk_job.size} (first request:${r.bulk_job.first_request})`) : ''));
      for (const a of r.failed_attempts || []) {
        box.appendChild(el('div', { class: 'try' }, `try at ${when(a.at)}: `, a.status ? `Klaviyo answered ${a.status}` : `no answer (${a.error || '?'})`));
      }
      if (r.last_error) box.appendChild(el('div', { class: 'why' }, r.last_error));
    }
    for (const s of e.schedules) {
      box.appendChild(el('div', { class: 'schedule' }, `schedule ${s.key}: `, el('span', { class: s.state }, s.state),
        ` (due ${when(s.due_at)})`, s.cancelled_by ? ` by event:${s.cancelled_by}` : ''));
    }
    root.appendChild(box);
  }
  if (t.memory.length) {
    root.appendChild(el('h3', {}, 'Memory'));
    for (const m of t.memory) {
      root.appendChild(el('div', { class: 'memory' }, el('b', {}, `${m.tenant} ${m.key}`),
        el('div', { class: 'memory-value' }, JSON.stringify(m.value, null, 1))));
    }
  }
}

loaders.search = async () => {};

$('search-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams({ q: $('search-q').value.trim() });
  if ($('search-tenant').value.trim()) q.set('tenant', $('search-tenant').value.trim());
  try { renderTrace(await api('/api/trace?' + q)); } catch (e) { clear($('trace')); $('trace').appendChild(el('p', { class: 'error' }, e.message)); }
});

// ---------------------------------------------------------------- dead letters

loaders.dead = async () => {
  const rows = await api('/api/dead');
  const body = $('dead-rows');
  clear(body);
  if (!rows.length) body.appendChild(el('tr', {}, el('td', { colspan: '5' }, 'No dead letter.')));
  for (const d of rows) {
    const replay = el('button', { class: 'replay' }, 'Replay');
    const purge = el('button', { class: 'purge' }, 'Purge');
    replay.addEventListener('click', () => act('replay', d));
    purge.addEventListener('click', () => act('purge', d));
    body.appendChild(el('tr', { class: 'dead-row', 'data-id': d.id }, el('td', {}, d.id), el('td', {}, d.tenant),
      el('td', {}, d.what), el('td', { class: 'why' }, d.why), el('td', {}, replay, ' ', purge)));
  }
};

async function act(what, d) {
  const text = what === 'replay' ? `Send ${d.id} (${d.tenant}) again?` : `Forget ${d.id} (${d.tenant}) for good?`;
  if (!(await confirmAction(text))) return;
  try {
    await api('/api/dead/' + what, { method: 'POST', body: JSON.stringify({ id: d.id }) });
    $('dead-message').textContent = `${d.id}: ${what === 'replay' ? 'replayed' : 'purged'}`;
  } catch (e) {
    $('dead-message').textContent = `${d.id}: ${e.message}`;
  }
  await loaders.dead();
}

// ---------------------------------------------------------------- live tail

loaders.tail = async () => {
  if (tail) return;
  tail = new EventSource('/api/tail');
  tail.onopen = () => { $('tail-state').textContent = '(connected)'; };
  tail.onerror = () => { $('tail-state').textContent = '(reconnecting)'; };
  tail.onmessage = (m) => {
    const t = JSON.parse(m.data);
    const who = t.name ? `${t.name} <${t.customer}>` : t.customer;
    const row = el('tr', { class: 'tail-row', 'data-event': t.event }, el('td', {}, new Date(t.at).toISOString().slice(11, 23)),
      el('td', {}, t.tenant), el('td', {}, 'event:' + t.event), el('td', {}, t.trigger), el('td', { class: 'customer' }, who),
      el('td', { class: t.outcome }, t.outcome), el('td', {}, t.reason));
    const body = $('tail-rows');
    body.insertBefore(row, body.firstChild);
    while (body.children.length > 200) body.removeChild(body.lastChild);
  };
};

// ---------------------------------------------------------------- scripts and their diff

// Line diff by longest common subsequence: [{op: ' '|'+'|'-', line}].
function diffLines(a, b) {
  const x = a.split('\n'), y = b.split('\n');
  const n = x.length, m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push({ op: ' ', line: x[i] }); i++; j++; } else if (L[i + 1][j] >= L[i][j + 1]) out.push({ op: '-', line: x[i++] }); else out.push({ op: '+', line: y[j++] });
  }
  while (i < n) out.push({ op: '-', line: x[i++] });
  while (j < m) out.push({ op: '+', line: y[j++] });
  return out;
}

async function loadVersions() {
  const tenant = $('scripts-tenant').value;
  if (!tenant) return;
  const v = await api('/api/scripts?' + new URLSearchParams({ tenant }));
  v.versions.sort((p, q) => q.frozen_at - p.frozen_at);
  const list = $('scripts-list');
  clear(list);
  for (const sel of [$('scripts-a'), $('scripts-b')]) clear(sel);
  for (const x of v.versions) {
    list.appendChild(el('li', {}, x.version, ` frozen ${new Date(x.frozen_at).toISOString()}`, x.version === v.running ? ' (running)' : ''));
    $('scripts-a').appendChild(el('option', { value: x.version }, x.version));
    $('scripts-b').appendChild(el('option', { value: x.version }, x.version));
  }
  // By default: the running version against the newest other one (what the last change did).
  const b = v.versions.find((x) => x.version === v.running) || v.versions[0];
  const a = v.versions.find((x) => x !== b);
  if (b) $('scripts-b').value = b.version;
  if (a) $('scripts-a').value = a.version;
}

loaders.scripts = async () => {
  const tenants = await api('/api/tenants');
  const sel = $('scripts-tenant');
  const keep = sel.value;
  clear(sel);
  for (const t of tenants) sel.appendChild(el('option', { value: t.tenant }, t.tenant));
  if (keep) sel.value = keep;
  await loadVersions();
};

$('scripts-tenant').addEventListener('change', () => loadVersions());

$('scripts-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const tenant = $('scripts-tenant').value;
  const [a, b] = await Promise.all([$('scripts-a').value, $('scripts-b').value].map((version) => api('/api/script?' + new URLSearchParams({ tenant, version }))));
  const root = $('diff');
  clear(root);
  const files = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  for (const f of files) {
    const d = diffLines(a[f] || '', b[f] || '');
    if (!d.some((l) => l.op !== ' ')) continue;
    root.appendChild(el('h3', {}, f));
    for (const l of d) if (l.op !== ' ') root.appendChild(el('div', { class: 'diff-line ' + (l.op === '+' ? 'diff-add' : 'diff-del') }, l.op + ' ' + l.line));
  }
  if (!root.firstChild) root.appendChild(el('p', {}, 'The two versions are the same.'));
});

// ---------------------------------------------------------------- charts (SVG drawn here)

const SVG = 'http://www.w3.org/2000/svg';
const series = { ingest: [], mapped: [], delivered: [], mapping: [], latency: [] };
const titles = {
  ingest: 'webhooks accepted / s', mapped: 'events mapped / s', delivered: 'requests delivered / s',
  mapping: 'mean mapping latency (s): journaled to mapped', latency: 'mean delivery latency (s): queued to delivered',
};
let chartTimer = null;

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function drawChart(name) {
  const points = series[name];
  const w = 400, h = 120, max = Math.max(1e-9, ...points.map((p) => p.v));
  const s = svg('svg', { viewBox: `0 0 ${w} ${h + 14}`, preserveAspectRatio: 'none', class: 'chart-svg', 'data-chart': name });
  for (let k = 0; k <= 4; k++) s.appendChild(svg('line', { x1: 0, x2: w, y1: (h * k) / 4, y2: (h * k) / 4 }));
  const step = w / Math.max(1, points.length - 1);
  const coords = points.map((p, i) => `${(i * step).toFixed(1)},${(h - (p.v / max) * h).toFixed(1)}`).join(' ');
  s.appendChild(svg('polyline', { points: coords }));
  const label = svg('text', { x: 2, y: h + 12 });
  label.textContent = `max ${max.toFixed(2)}, now ${points.length ? points[points.length - 1].v.toFixed(2) : '-'}`;
  s.appendChild(label);
  return el('div', { class: 'chart' }, el('h3', {}, titles[name]), s);
}

async function sampleCharts() {
  const c = await counters();
  if (!c.before) return;
  const push = (k, v) => { series[k].push({ v: v || 0 }); if (series[k].length > 60) series[k].shift(); };
  push('ingest', rate(c, 'returnflow_webhooks_total', { outcome: 'accepted' }));
  push('mapped', rate(c, 'returnflow_events_total'));
  push('delivered', rate(c, 'returnflow_requests_total', { outcome: 'delivered' }));
  const mean = (name) => {
    const n = sum(c.now.samples, name + '_count') - sum(c.before.samples, name + '_count');
    const s = sum(c.now.samples, name + '_sum') - sum(c.before.samples, name + '_sum');
    return n > 0 ? s / n : 0;
  };
  push('mapping', mean('returnflow_mapping_seconds'));
  push('latency', mean('returnflow_delivery_seconds'));
  if ($('charts').hidden) return;
  const grid = $('chart-grid');
  clear(grid);
  for (const k of Object.keys(series)) grid.appendChild(drawChart(k));
}

loaders.charts = async () => {
  if (!chartTimer) chartTimer = setInterval(() => sampleCharts().catch(() => {}), 2000);
  await sampleCharts();
};

// ---------------------------------------------------------------- start

window.addEventListener('hashchange', () => { if (csrf) show(location.hash.slice(1)); });
api('/api/session').then((r) => { csrf = r.csrf; showApp(); }).catch(() => showLogin());
