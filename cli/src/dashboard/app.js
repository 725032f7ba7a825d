// The Sluice dashboard: one page fed by the server's event stream. Every element is built with DOM calls and
// every text goes in as a text node: nothing read from the cluster is ever parsed as HTML.
'use strict';

// Upstream's glyphs; paused (॥) is drawn by the stylesheet instead, since few fonts have it.
const GLYPHS = {
  ok: '✔', progressing: '◌', paused: '', bad: '✖', waiting: '◷', warning: '⚠', neutral: '•', unknown: '?', blank: ' ',
};

const ACTIONS = [
  {
    id: 'promote', verb: 'promote', label: 'Promote', ask: 'Promote {name} past its current step?',
    applies: (status) => status === 'Paused',
  },
  {
    id: 'promote-full', verb: 'promote', full: true, label: 'Promote-Full',
    ask: 'Promote {name} fully, skipping every remaining step, analysis and pause?',
    applies: (status) => status !== 'Healthy',
  },
  {
    id: 'abort', verb: 'abort', label: 'Abort', danger: true, ask: 'Abort {name}? Traffic returns to the stable version.',
    applies: (status) => status !== 'Healthy' && status !== 'Degraded',
  },
  {
    id: 'retry', verb: 'retry', label: 'Retry', ask: 'Retry the aborted update of {name}?',
    applies: (status) => status === 'Degraded',
  },
];

const state = {
  rollouts: [], loaded: false, namespace: '', connected: false,
  pending: null, // the action waiting for its confirmation
  busy: false,
  notice: null, // {ok, text} of the last action
};

// h('div', {class: 'x'}, 'text', child, [more]) builds an element; strings become text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

function icon(kind, title) {
  const known = Object.prototype.hasOwnProperty.call(GLYPHS, kind) ? kind : 'unknown';
  return h('span', { class: `icon icon-${known}`, title: title || known }, GLYPHS[known]);
}

function age(timestamp) {
  if (!timestamp) return '';
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(timestamp)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function tags(words) {
  return (words || []).filter(Boolean).map((w) => h('span', { class: `tag tag-${w.replace(/[^a-z]/g, '')}` }, w));
}

function selected() {
  const m = location.hash.match(/^#\/rollout\/(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

function rolloutLink(name) {
  return `#/rollout/${encodeURIComponent(name)}`;
}

function weight(ro) {
  if (!ro.setWeight || ro.setWeight === '-') return '-';
  return ro.actualWeight && ro.actualWeight !== ro.setWeight ? `${ro.setWeight} (actual ${ro.actualWeight})` : ro.setWeight;
}

function images(list) {
  return h('ul', { class: 'images' }, (list || []).map((img) => h('li', {}, h('code', {}, img.image), ' ', tags(img.tags))));
}

function listView() {
  if (!state.loaded) return h('p', { class: 'empty' }, 'Loading…');
  if (state.rollouts.length === 0) return h('p', { class: 'empty' }, `No rollouts in namespace ${state.namespace}.`);
  const head = h('tr', {}, ['Status', 'Name', 'Strategy', 'Step', 'Weight', 'Ready', 'Images', 'Age'].map((t) => h('th', {}, t)));
  const rows = state.rollouts.map((ro) => h('tr', {
    class: 'rollout-row', 'data-rollout': ro.name, onclick: () => { location.hash = rolloutLink(ro.name); },
  },
  h('td', { class: 'status' }, icon(ro.icon, ro.status), ' ', ro.status || 'Unknown'),
  h('td', {}, h('a', { href: rolloutLink(ro.name) }, ro.name)),
  h('td', {}, ro.strategy),
  h('td', {}, ro.step || '-'),
  h('td', {}, weight(ro)),
  h('td', {}, `${ro.ready}/${ro.desired}`),
  h('td', {}, images(ro.images)),
  h('td', {}, age(ro.created))));
  return h('table', { class: 'rollouts' }, h('thead', {}, head), h('tbody', {}, rows));
}

// The action bar is kept across data updates (only a click changes it), so that a button stays the same
// element while updates stream in.
let actionBar = { key: null, el: null };

function actionsFor(ro) {
  const key = JSON.stringify([ro.name, ro.status, state.pending && state.pending.id, state.busy, state.notice]);
  if (actionBar.key !== key) actionBar = { key, el: buildActions(ro.name, ro.status) };
  return actionBar.el;
}

// Buttons that do not fit the status are disabled, as upstream's dashboard does (the API still takes them).
function buildActions(name, status) {
  const buttons = ACTIONS.map((a) => h('button', {
    class: a.danger ? 'action danger' : 'action',
    'data-action': a.id,
    disabled: state.busy || !a.applies(status),
    onclick: () => { state.pending = a; state.notice = null; render(); },
  }, a.label));
  const bar = h('div', { class: 'actions' }, buttons);
  const parts = [bar];
  if (state.pending) {
    const a = state.pending;
    parts.push(h('div', { class: 'confirm', role: 'alertdialog' },
      h('span', {}, a.ask.replace('{name}', `rollout '${name}'`)),
      h('button', { class: 'action primary', 'data-confirm': a.id, onclick: () => run(name, a) }, `Yes, ${a.label}`),
      h('button', { class: 'action', 'data-cancel': '', onclick: () => { state.pending = null; render(); } }, 'Cancel')));
  }
  if (state.busy) parts.push(h('div', { class: 'notice' }, 'Working…'));
  if (state.notice) {
    parts.push(h('div', { class: state.notice.ok ? 'notice ok' : 'notice error', 'data-notice': '' }, state.notice.text));
  }
  return h('div', { class: 'action-area' }, parts);
}

async function run(name, action) {
  state.pending = null;
  state.busy = true;
  render();
  const url = `api/v1/rollouts/${encodeURIComponent(name)}/${action.verb}${action.full ? '?full=true' : ''}`;
  try {
    const res = await fetch(url, { method: 'POST' });
    const body = await res.json().catch(() => ({}));
    state.notice = res.ok ? { ok: true, text: body.message || 'Done.' } : { ok: false, text: body.error || res.statusText };
  } catch (err) {
    state.notice = { ok: false, text: String(err) };
  }
  state.busy = false;
  render();
}

function field(label, value) {
  return h('div', { class: 'field' }, h('span', { class: 'label' }, label), h('span', { class: 'value' }, value));
}

function pods(list) {
  return h('div', { class: 'pods' }, (list || []).map((p) => h('span', {
    class: `pod pod-${Object.prototype.hasOwnProperty.call(GLYPHS, p.icon) ? p.icon : 'unknown'}`,
    title: `${p.name}: ${p.status} ${p.info}`.trim(),
  })));
}

function replicaSet(rs) {
  return h('div', { class: 'replicaset' },
    h('div', { class: 'rs-head' }, icon(rs.icon, rs.status), ' ', h('strong', {}, rs.name), ' ', tags(rs.info),
      h('span', { class: 'muted' }, ` ${rs.status} · ${rs.available}/${rs.replicas} available · ${age(rs.created)}`),
      (rs.images || []).map((img) => h('code', { class: 'rs-image' }, img))),
    pods(rs.pods));
}

function analysisRun(ar) {
  const metrics = (ar.metrics || []).map((m) => h('tr', {},
    h('td', {}, m.name), h('td', {}, m.phase), h('td', {}, h('code', {}, m.lastValue || '-')),
    h('td', {}, h('code', {}, m.successCondition || ''))));
  return h('div', { class: 'analysisrun' },
    h('div', { class: 'rs-head' }, icon(ar.icon, ar.status), ' ', h('strong', {}, ar.name), ' ',
      h('span', { class: 'muted' }, `${ar.status} ${ar.info}`)),
    ar.message ? h('p', { class: 'message' }, ar.message) : null,
    metrics.length ? h('table', { class: 'metrics' },
      h('thead', {}, h('tr', {}, ['Metric', 'Phase', 'Last value', 'Success condition'].map((t) => h('th', {}, t)))),
      h('tbody', {}, metrics)) : null);
}

function revision(rev) {
  return h('section', { class: 'revision' },
    h('h3', {}, `Revision ${rev.revision}`),
    (rev.replicaSets || []).map(replicaSet),
    (rev.experiments || []).map((ex) => h('div', { class: 'replicaset' },
      h('div', { class: 'rs-head' }, icon(ex.icon, ex.status), ' ', h('strong', {}, ex.name),
        h('span', { class: 'muted' }, ` experiment ${ex.status}`)),
      (ex.replicaSets || []).map(replicaSet))),
    (rev.analysisRuns || []).map(analysisRun));
}

function detailView(name) {
  const back = h('a', { class: 'back', href: '#/' }, '← All rollouts');
  const ro = state.rollouts.find((r) => r.name === name);
  if (!ro) {
    return h('div', {}, back, h('p', { class: 'empty' },
      state.loaded ? `Rollout ${name} not found in namespace ${state.namespace}.` : 'Loading…'));
  }
  const summary = h('div', { class: 'summary' },
    field('Strategy', ro.strategy || '-'),
    field('Step', ro.step || '-'),
    field('Set weight', ro.setWeight || '-'),
    field('Actual weight', ro.actualWeight || '-'),
    field('Replicas', `${ro.desired} desired · ${ro.current} current · ${ro.updated} updated · ${ro.ready} ready · ${ro.available} available`),
    field('Images', images(ro.images)));
  return h('div', { class: 'detail', 'data-detail': ro.name }, back,
    h('h2', {}, icon(ro.icon, ro.status), ' ', ro.name, ' ', h('span', { class: `status-word icon-${ro.icon}` }, ro.status)),
    ro.message ? h('p', { class: 'message' }, ro.message) : null,
    actionsFor(ro),
    summary,
    h('h3', { class: 'section' }, 'Revisions'),
    (ro.revisions || []).length ? ro.revisions.map(revision) : h('p', { class: 'empty' }, 'No revisions yet.'));
}

function render() {
  document.getElementById('namespace').textContent = state.namespace ? `namespace: ${state.namespace}` : '';
  const live = document.getElementById('live');
  live.textContent = state.connected ? '● live' : '○ reconnecting…';
  live.className = state.connected ? 'live on' : 'live off';
  const name = selected();
  document.title = name ? `${name} · Sluice Rollouts` : 'Sluice Rollouts';
  document.getElementById('main').replaceChildren(name === null ? listView() : detailView(name));
}

function connect() {
  const events = new EventSource('api/v1/stream');
  events.onopen = () => { state.connected = true; render(); };
  events.onmessage = (ev) => {
    state.rollouts = JSON.parse(ev.data);
    state.loaded = true;
    state.connected = true;
    render();
  };
  // EventSource reconnects by itself; the page only says it is not live meanwhile.
  events.onerror = () => { state.connected = false; render(); };
}

window.addEventListener('hashchange', () => {
  state.pending = null;
  state.notice = null;
  render();
});
fetch('api/v1/namespace').then((r) => r.json()).then((j) => { state.namespace = j.namespace; render(); }).catch(() => {});
connect();
render();
// Ages move on without events.
setInterval(render, 10000);
