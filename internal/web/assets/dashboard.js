// bluegreen dashboard: plain JavaScript, no framework. It calls the API
// with the session cookie (and the page's CSRF token on every action),
// follows the event stream, and redraws from the API's answers. Text is
// always set with textContent: nothing from the server is parsed as HTML.
'use strict';
(function () {
  const body = document.body;
  const CSRF = body.dataset.csrf || '';
  const CAN_DEPLOY = body.dataset.canDeploy === 'true';
  const APP = body.dataset.app || '';

  // ---- small helpers ----
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }
  const $ = (id) => document.getElementById(id);
  function replace(node, ...kids) { node.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false)); }
  function pct(x) { return (100 * x).toFixed(x < 0.001 && x > 0 ? 3 : 2) + '%'; }
  function ms(sec) { return sec >= 1 ? sec.toFixed(2) + ' s' : (1000 * sec).toFixed(1) + ' ms'; }
  function dur(msec) {
    if (msec < 0) msec = 0;
    const s = Math.round(msec / 1000);
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(s % 60).padStart(2, '0') + 's';
    return Math.floor(m / 60) + 'h ' + String(m % 60).padStart(2, '0') + 'm';
  }
  function clock(t) { return new Date(t).toLocaleTimeString([], { hour12: false }); }
  function when(t) { const d = new Date(t); return d.toLocaleDateString() + ' ' + clock(t); }
  function fleetLabel(name) { return h('span', { class: 'fleet-name ' + (name === 'blue' || name === 'green' ? name : '') }, name); }
  // A fleet is named by its role, as the CLI names it: blue is the live
  // fleet (the one a deployment started from), green the candidate. The
  // slots the router knows them by alternate from deployment to deployment.
  function roleOf(f) { return f.role || f.name; }
  // What a fleet is doing, in the words of its role: green is the candidate
  // until it is live; blue is live until green is, then it retires.
  function standing(f) {
    if (f.live) return 'live';
    return roleOf(f) === 'blue' ? 'retiring' : 'candidate';
  }
  function liveRole(st) { const f = st.fleets.find((x) => x.live); return f ? roleOf(f) : st.live_fleet; }

  async function api(method, path, data) {
    const opts = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
    if (method !== 'GET') {
      opts.headers['Content-Type'] = 'application/json';
      opts.headers['X-Bluegreen-CSRF'] = CSRF;
      opts.body = JSON.stringify(data || {});
    }
    const r = await fetch(path, opts);
    if (r.status === 401) {
      location.href = '/login?next=' + encodeURIComponent(location.pathname);
      throw new Error('the session has ended; log in again');
    }
    const j = await r.json().catch(() => null);
    if (!r.ok) throw new Error(j && j.error ? j.error : r.status + ' ' + r.statusText);
    return j;
  }

  // follow reads the API's event stream (server-sent events) with fetch, so
  // that every kind of event arrives in one place, and reconnects after the
  // last event it saw.
  function follow(query, onEvent, onState) {
    let after = query.after || 0;
    const base = '/api/v1/events?' + Object.entries(query).filter(([k]) => k !== 'after').map(([k, v]) => k + '=' + encodeURIComponent(v)).join('&');
    async function run() {
      for (;;) {
        try {
          const r = await fetch(base + '&after=' + after, { headers: { Accept: 'text/event-stream' }, credentials: 'same-origin' });
          if (r.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); return; }
          if (!r.ok || !r.body) throw new Error('event stream: ' + r.status);
          onState('live');
          const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
              if (!data) continue;
              const ev = JSON.parse(data);
              after = Math.max(after, ev.seq);
              onEvent(ev);
            }
          }
        } catch (e) {
          // fall through to reconnect
        }
        onState('reconnecting');
        await new Promise((res) => setTimeout(res, 2000));
      }
    }
    run();
  }

  // debounce runs fn at most once per wait, after the last call.
  function debounce(fn, wait) {
    let t = null;
    return () => { clearTimeout(t); t = setTimeout(fn, wait); };
  }

  // splitBar draws production traffic per fleet, each segment labelled.
  function splitBar(fleets) {
    const shown = fleets.filter((f) => f.weight > 0);
    const text = shown.length ? shown.map((f) => f.name + ' ' + f.weight + '%').join(', ') : 'no production traffic';
    const bar = h('div', { class: 'split', role: 'img', 'aria-label': 'traffic split: ' + text });
    for (const f of shown) {
      const seg = h('div', { class: 'seg seg-' + roleOf(f), title: roleOf(f) + ' r' + f.revision + ': ' + f.weight + '%' }, roleOf(f) + ' ' + f.weight + '%');
      seg.style.width = f.weight + '%';
      bar.append(seg);
    }
    const legend = h('p', { class: 'split-legend' }, fleets.map((f, i) => [i ? ' · ' : '', fleetLabel(roleOf(f)), ' r' + f.revision + (f.live ? ' (live)' : '') + ' ' + f.weight + '%' + (f.test ? ', test listener' : '') + (f.fenced ? ', fenced' : '')]));
    return [bar, legend];
  }

  function health(f) {
    const ok = f.targets > 0 && f.healthy_targets === f.targets;
    return h('span', { class: ok ? 'ok' : (f.targets ? 'bad' : 'muted') }, f.targets ? f.healthy_targets + '/' + f.targets + ' healthy' : 'not routed');
  }

  // attention says when a person is needed, or null.
  function attention(st, last) {
    const d = st.deployment;
    const g = st.gate;
    if (g && g.state === 'paused') return { text: 'Paused: production requests are held' + (g.held != null ? ' (' + g.held + ' now)' : '') + ' until bluegreen resume ' + st.name + (g.by ? ' (by ' + g.by + ')' : ''), bad: false };
    if (g && g.state === 'maintenance') return { text: 'In maintenance: production requests get a 503 page until bluegreen maintenance ' + st.name + ' off' + (g.by ? ' (by ' + g.by + ')' : ''), bad: true };
    if (d && d.phase === 'AwaitingApproval') return { text: 'Needs you: approval waiting for r' + d.to_revision, bad: false };
    if (d && st.progress && st.progress.waiting === 'promote') return { text: 'Needs you: paused until promote', bad: false };
    if (!d && last && last.outcome === 'rolled_back') return { text: 'Rolled back: r' + last.to_revision + ' (' + (last.reason || 'no reason') + ')', bad: true };
    if (!d && last && last.outcome === 'failed') return { text: 'Failed: r' + last.to_revision + ' (' + (last.reason || '') + ')', bad: true };
    return null;
  }

  // ---- the apps page ----
  // One request fills every card (GET /api/v1/status), however many apps
  // there are; a refresh never overlaps the one before.
  function appsPage() {
    const cards = new Map(Array.from(document.querySelectorAll('.app-card')).map((c) => [c.dataset.app, c]));
    function fill(card, st) {
      const d = st.deployment;
      const last = st.last_deployment;
      const att = attention(st, last);
      replace(card.querySelector('.card-body'),
        att && h('p', { class: 'attention' + (att.bad ? ' bad' : '') }, att.text),
        h('p', {}, 'live ', st.live_revision ? 'r' + st.live_revision + ' on ' : 'none', st.live_fleet ? fleetLabel(liveRole(st)) : ''),
        splitBar(st.fleets),
        st.fleets.map((f) => h('p', {}, fleetLabel(roleOf(f)), ' r' + f.revision + ': ', health(f), ', ' + f.request_rate.toFixed(1) + ' req/s, ' + pct(f.error_rate) + ' errors')),
        d ? h('p', {}, 'deploying r' + d.to_revision + ': ', h('strong', {}, d.phase), st.progress && st.progress.next ? ' — next: ' + st.progress.next : '')
          : h('p', { class: 'muted' }, last ? 'last deployment r' + last.to_revision + ' ' + last.outcome.replace('_', ' ') + ' at ' + when(last.finished_at || last.updated_at) : 'no deployments'));
    }
    let running = false, again = false;
    async function refresh() {
      if (running) { again = true; return; }
      running = true;
      try {
        const ov = await api('GET', '/api/v1/status');
        for (const st of ov.apps) {
          const card = cards.get(st.name);
          if (card) fill(card, st);
        }
      } catch (e) {
        for (const card of cards.values()) replace(card.querySelector('.card-body'), h('p', { class: 'bad' }, e.message));
      } finally {
        running = false;
        if (again) { again = false; refresh(); }
      }
    }
    refresh();
    const soon = debounce(refresh, 300);
    follow({}, (ev) => { if (ev.app) soon(); }, (s) => { $('conn-state').textContent = s === 'live' ? 'Updating live.' : 'Reconnecting to the event stream…'; });
    setInterval(refresh, 5000);
  }

  // ---- the app page ----
  const ORDER = ['Pending', 'Provisioning', 'Validating', 'TestTraffic', 'AwaitingApproval', 'Shifting', 'Baking', 'Retiring', 'Succeeded'];
  const DEADLINES = { approval: 'approval times out', bake: 'bake ends', keep_blue: 'blue retires', next_check: 'next check', startup: 'green must be healthy by', progress: 'progress deadline' };

  function appPage() {
    const state = { status: null, deps: [], revs: [], depEvents: [], depID: '', samples: [], lastSample: '' };
    const base = '/api/v1/apps/' + encodeURIComponent(APP);

    function renderStatus() {
      const st = state.status;
      if (!st) return;
      const d = st.deployment;
      const last = state.deps[0];
      replace($('summary'), 'live revision ', st.live_revision ? 'r' + st.live_revision + ' on ' : 'none yet', st.live_fleet ? fleetLabel(liveRole(st)) : '',
        d ? [' · deploying r' + d.to_revision + ' (', h('span', {}, d.phase), ')'] : '');
      const att = attention(st, last);
      $('attention').hidden = !att;
      if (att) { $('attention').textContent = att.text; $('attention').className = 'attention' + (att.bad ? ' bad' : ''); }
      replace($('split'), splitBar(st.fleets));
      renderFleets();
      renderServices();
      renderProgress();
    }

    // A stack's services: where each answers, and each fleet's copy of it as
    // the router saw it (calls from the other services included), with the
    // address those services reach it at, and its rules' latest verdicts.
    function renderServices() {
      const st = state.status;
      const sv = st.services || [];
      $('services-card').hidden = sv.length === 0;
      if (!sv.length) return;
      const verdict = (v) => h('span', { class: v === 'pass' ? 'ok' : v === 'fail' ? 'bad' : 'warnc' }, v);
      replace($('services'), h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['service', 'answers', 'fleet', 'revision', 'weight', 'healthy', 'req/s', 'errors', 'p99', 'address', 'checks'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, sv.map((s) => (s.fleets.length ? s.fleets : [null]).map((f, i) => h('tr', { 'data-service': s.name },
          h('td', { class: 'mono' }, i ? '' : s.name),
          h('td', { class: 'mono' }, i ? '' : s.public ? s.path : h('span', { class: 'muted' }, 'internal')),
          f ? [
            h('td', {}, fleetLabel(roleOf(f))), h('td', {}, 'r' + f.revision), h('td', {}, s.public ? f.weight + '%' : ''),
            h('td', {}, health(f)), h('td', {}, f.request_rate.toFixed(1)), h('td', {}, pct(f.error_rate)),
            h('td', {}, f.requests ? ms(f.p99_seconds) : '–'), h('td', { class: 'mono' }, f.address || ''),
          ] : h('td', { colspan: 8, class: 'muted' }, 'not running'),
          h('td', {}, i ? '' : (s.checks || []).map((c, j) => [j ? ', ' : '', c.rule + ' ', verdict(c.verdict)])))))))),
      sv.some((s) => s.live_address) ? h('p', { class: 'muted' }, 'Live addresses, for callers outside the stack: ',
        sv.filter((s) => s.live_address).map((s, i) => [i ? ' · ' : '', s.name + ' ', h('code', {}, s.live_address)])) : '');
    }

    function renderProgress() {
      const st = state.status;
      const dep = st && st.deployment ? st.deployment : state.deps[0];
      if (!dep) return;
      $('dep-head').textContent = dep.id + ': r' + (dep.from_revision || '–') + ' → r' + dep.to_revision + ', started ' + when(dep.created_at);
      $('phase').textContent = dep.phase;
      $('outcome').textContent = dep.outcome ? dep.outcome.replace('_', ' ') + (dep.reason ? ': ' + dep.reason : '') : '';
      $('outcome').className = 'outcome ' + (dep.outcome === 'succeeded' ? 'ok' : dep.outcome ? 'bad' : '');
      const p = st && st.deployment ? st.progress : null;
      $('step').textContent = p && p.steps ? 'Step ' + Math.min(p.step + 1, p.steps) + ' of ' + p.steps + ' · green ' + p.weight + '%' + (p.waiting ? ' · waiting for ' + p.waiting : '') : '';
      if (p && p.next) {
        replace($('next'), h('span', { class: 'label' }, 'Next: '), p.next, p.next_at ? h('span', { 'data-until': p.next_at }, '') : '');
      } else {
        replace($('next'));
      }
      const dl = Object.entries((st && st.deployment && dep.deadlines) || {}).filter(([k]) => DEADLINES[k]);
      replace($('deadlines'), dl.map(([k, t]) => h('li', {}, DEADLINES[k] + ' at ' + clock(t) + ' ', h('span', { 'data-until': t }, ''))));
      renderTimeline(dep);
      tick();
    }

    function renderTimeline(dep) {
      const phases = [];
      for (const ev of state.depEvents) {
        if (ev.kind === 'deployment.created') phases.push({ phase: 'Pending', at: ev.time });
        if (ev.kind === 'phase' && ev.fields && ev.fields.phase) phases.push({ phase: ev.fields.phase, at: ev.time });
      }
      const ended = !!dep.outcome;
      const rows = phases.map((p, i) => {
        const next = phases[i + 1];
        const current = !next && !ended;
        const final = !next && ended;
        const took = next ? dur(new Date(next.at) - new Date(p.at)) : '';
        return h('li', { class: current ? 'current' : 'done', 'aria-current': current ? 'step' : null },
          h('span', {}, p.phase), h('span', { class: 'mono' }, clock(p.at)),
          current ? h('span', { 'data-since': p.at }, '') : h('span', { class: 'muted' }, final ? 'end' : took));
      });
      if (!ended) {
        const seen = new Set(phases.map((p) => p.phase));
        const at = ORDER.indexOf(dep.phase);
        for (const ph of ORDER.slice(at + 1)) {
          if (ph === 'AwaitingApproval' || seen.has(ph)) continue;
          rows.push(h('li', { class: 'upcoming' }, h('span', {}, ph), h('span', {}, ''), h('span', {}, 'next')));
        }
      }
      replace($('timeline'), rows);
    }

    function renderChecks() {
      const checks = state.depEvents.filter((e) => e.kind === 'check');
      const c = checks[checks.length - 1];
      if (!c) { replace($('checks'), h('p', { class: 'muted' }, 'No check evaluated in this deployment.')); return; }
      const f = c.fields || {};
      const verdictClass = f.verdict === 'pass' ? 'ok' : f.verdict === 'fail' ? 'bad' : 'warnc';
      replace($('checks'),
        h('p', {}, 'Last evaluation at ' + clock(c.time) + ': ', h('span', { class: verdictClass }, f.verdict || '?'),
          ' (failures in a row: ' + (f.failures || 0) + ' of ' + (f.failure_limit || '?') + ')'),
        h('p', {}, fleetLabel('green'), ' ' + (f.green_requests || 0) + ' requests, ' + pct(f.green_error_rate || 0) + ' errors, p99 ' + ms(f.green_p99_seconds || 0),
          f.blue_requests !== undefined ? [' · ', fleetLabel('blue'), ' ' + f.blue_requests + ' requests, ' + pct(f.blue_error_rate || 0) + ' errors, p99 ' + ms(f.blue_p99_seconds || 0)] : ''),
        h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, ['rule', 'verdict', 'green', 'blue', 'limit', 'detail'].map((x) => h('th', { scope: 'col' }, x)))),
          h('tbody', {}, (f.results || []).map((r) => h('tr', {},
            h('td', { class: 'mono' }, r.service ? r.service + ': ' + r.rule : r.rule), h('td', { class: r.verdict === 'pass' ? 'ok' : r.verdict === 'fail' ? 'bad' : 'warnc' }, r.verdict),
            h('td', {}, String(r.green)), h('td', {}, r.blue !== undefined ? String(r.blue) : ''), h('td', {}, r.limit !== undefined ? String(r.limit) : ''), h('td', {}, r.detail || '')))))));
    }

    const logs = {};
    function renderFleets() {
      const st = state.status;
      replace($('fleets'), st.fleets.length ? st.fleets.map((f) => h('div', { class: 'fleet' },
        h('h3', {}, fleetLabel(roleOf(f)), ' — r' + f.revision + ', ' + standing(f) + ', ' + f.weight + '% of traffic, ', health(f),
          ', ' + f.request_rate.toFixed(1) + ' req/s, ' + pct(f.error_rate) + ' errors, p99 ' + ms(f.p99_seconds) + ' (last ' + st.window + ')'),
        h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, ['instance', 'state', 'health', 'address', 'started', 'recent output'].map((x) => h('th', { scope: 'col' }, x)))),
          h('tbody', {}, f.instances.map((i) => h('tr', {},
            h('td', { class: 'mono' }, i.id), h('td', {}, i.state + (i.exit_code !== undefined ? ' (exit ' + i.exit_code + ')' : '')),
            h('td', {}, i.healthy === undefined ? h('span', { class: 'muted' }, 'not routed') : i.healthy ? h('span', { class: 'ok' }, 'healthy') : h('span', { class: 'bad' }, 'unhealthy')),
            h('td', { class: 'mono' }, i.address), h('td', {}, clock(i.started_at)),
            h('td', {}, h('pre', { class: 'logs' }, logs[i.id] || ''))))))))) : h('p', { class: 'muted' }, 'No fleets run.'));
    }

    async function refreshLogs() {
      const st = state.status;
      if (!st) return;
      const ins = st.fleets.flatMap((f) => f.instances).filter((i) => i.state === 'running').slice(0, 12);
      await Promise.all(ins.map(async (i) => {
        try {
          const r = await fetch(base + '/instances/' + encodeURIComponent(i.id) + '/logs?tail=4', { credentials: 'same-origin' });
          if (r.ok) logs[i.id] = (await r.text()).trimEnd();
        } catch (e) { /* shown next time */ }
      }));
      renderFleets();
    }

    // runs says what a revision runs: its image pinned to an ID, or its bundle.
    function runs(r) {
      if (r.services) {
        return h('span', { class: 'stack', title: r.source }, 'stack: ', r.services.map((s, i) => [i ? ', ' : '', s,
          r.images && r.images[s] ? [' ', h('code', { title: r.images[s].ref + '\n' + r.images[s].id }, r.images[s].id.replace('sha256:', '').slice(0, 12))] : '']));
      }
      if (r.image) return h('span', { class: 'image', title: r.image.id + (r.image.digest ? '\n' + r.image.digest : '') }, r.image.ref + ' ', h('code', {}, r.image.id.replace('sha256:', '').slice(0, 12)));
      return h('span', { class: 'muted', title: r.source }, 'bundle ' + r.source.replace('bundle:sha256:', '').slice(0, 12));
    }

    // Who asked for a deployment, as the API recorded it.
    function startedBy(d) {
      const a = d.started_by;
      if (!a) return '';
      return ', started by ' + (a.token || 'token ' + a.token_id) + (a.remote ? ' from ' + a.remote : '') + (a.via === 'dashboard' ? ' via the dashboard' : '');
    }
    function renderHistory() {
      const byRev = {};
      for (const d of state.deps) (byRev[d.to_revision] = byRev[d.to_revision] || []).push(d);
      const live = state.status ? state.status.live_revision : 0;
      replace($('history').querySelector('tbody'), state.revs.map((r) => h('tr', {},
        h('td', {}, 'r' + r.generation + (r.generation === live ? ' (live)' : '')),
        h('td', {}, runs(r)),
        h('td', {}, when(r.created_at)), h('td', {}, r.created_by || ''), h('td', {}, r.message || ''),
        h('td', {}, (byRev[r.generation] || []).map((d) => h('div', {}, when(d.created_at) + ': ' + (d.outcome ? d.outcome.replace('_', ' ') : d.phase) + startedBy(d)))),
        CAN_DEPLOY ? h('td', {}, r.generation !== live && live ? h('button', {
          type: 'button', class: 'small danger', 'data-action': 'rollback-to', 'data-revision': r.generation,
          onclick: () => confirmAction('Roll back to r' + r.generation + '?', 'Production goes back to revision ' + r.generation + ' (a weight flip while the previous fleet is warm, else a fast deployment of it).', 'rollback', { to: r.generation }),
        }, 'Roll back to r' + r.generation) : '') : null)));
    }

    // ---- charts ----
    // The charts reach back 15 minutes at most; while there is less history
    // they show what there is (at least a minute), so that a fresh server's
    // lines are not squeezed against the right edge.
    const SPAN = 15 * 60 * 1000;
    const MIN_SPAN = 60 * 1000;
    const CHARTS = [
      { key: 'request_rate', title: 'Request rate', fmt: (v) => v.toFixed(1) + ' req/s' },
      { key: 'error_rate', title: 'Error rate (5xx)', fmt: pct },
      { key: 'p99_seconds', title: 'p99 latency', fmt: ms },
    ];
    const NS = 'http://www.w3.org/2000/svg';
    function svg(tag, attrs) {
      const e = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      return e;
    }
    function renderCharts() {
      const now = Date.now();
      const pts = state.samples;
      const W = 300, H = 120, L = 4, B = 14;
      const span = pts.length ? Math.min(SPAN, Math.max(MIN_SPAN, now - new Date(pts[0].time))) : SPAN;
      const ago = (f) => { const s = Math.round(span * f / 1000); return s >= 60 && s % 60 === 0 ? '-' + s / 60 + 'm' : s >= 60 ? '-' + (s / 60).toFixed(1) + 'm' : '-' + s + 's'; };
      // Samples are kept by slot; the charts speak of roles.
      const slotOf = { blue: 'blue', green: 'green' };
      if (state.status) for (const f of state.status.fleets) if (f.role) slotOf[f.role] = f.name;
      const box = $('charts');
      box.dataset.samples = pts.length;
      box.dataset.greenPoints = pts.filter((p) => p.fleets[slotOf.green] && p.fleets[slotOf.green].requests > 0).length;
      box.dataset.bluePoints = pts.filter((p) => p.fleets[slotOf.blue] && p.fleets[slotOf.blue].requests > 0).length;
      replace(box, CHARTS.map((c) => {
        let max = 0;
        for (const p of pts) for (const f of Object.values(p.fleets)) max = Math.max(max, f[c.key]);
        if (max === 0) max = c.key === 'error_rate' ? 0.01 : c.key === 'p99_seconds' ? 0.01 : 1;
        max *= 1.15;
        const x = (t) => L + (W - L) * (1 - (now - new Date(t)) / span);
        const y = (v) => (H - B) - (H - B - 4) * (v / max);
        const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img', 'aria-label': c.title + ' of blue and green over the last ' + ago(1).slice(1) });
        s.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W, y2: H - B }));
        for (const [label, tx] of [[ago(1), L + 2], [ago(2 / 3), L + (W - L) / 3], [ago(1 / 3), L + 2 * (W - L) / 3], ['now', W - 20]]) {
          const t = svg('text', { class: 'axis-text', x: tx, y: H - 2 });
          t.textContent = label;
          s.append(t);
        }
        const top = svg('text', { class: 'axis-text', x: L + 2, y: 11 });
        top.textContent = c.fmt(max);
        s.append(top);
        const latest = {};
        for (const name of ['blue', 'green']) {
          // A gap in a fleet's samples (it did not run) breaks its line.
          let d = '', pen = 'M';
          for (const p of pts) {
            const f = p.fleets[slotOf[name]];
            if (!f) { pen = 'M'; continue; }
            d += pen + x(p.time).toFixed(1) + ',' + y(f[c.key]).toFixed(1) + ' ';
            pen = 'L';
            latest[name] = f;
          }
          if (d) s.append(svg('path', { class: 'line-' + name, d, 'vector-effect': 'non-scaling-stroke' }));
        }
        return h('figure', { class: 'chart' }, h('h3', {}, c.title), s,
          h('p', { class: 'now' }, ['blue', 'green'].filter((n) => latest[n]).map((n, i) => [i ? ' · ' : '', fleetLabel(n), (n === 'blue' ? ' (solid) ' : ' (dashed) ') + c.fmt(latest[n][c.key])])));
      }));
    }
    async function refreshSamples() {
      try {
        const m = await api('GET', base + '/metrics' + (state.lastSample ? '?since=' + encodeURIComponent(state.lastSample) : ''));
        if (m.samples.length) {
          state.samples = state.samples.concat(m.samples);
          state.lastSample = m.samples[m.samples.length - 1].time;
          const cutoff = Date.now() - SPAN;
          state.samples = state.samples.filter((p) => new Date(p.time) >= cutoff);
        }
        renderCharts();
      } catch (e) { /* next time */ }
    }

    // ---- events ----
    const KEEP_EVENTS = 300;
    function addEvent(ev) {
      const list = $('events');
      list.prepend(h('li', {}, h('span', { class: 'mono' }, clock(ev.time)), h('span', { class: 'kind' }, ev.kind), h('span', {}, ev.message)));
      while (list.children.length > KEEP_EVENTS) list.lastChild.remove();
    }

    // ---- refreshing ----
    async function refreshStatus() {
      try {
        state.status = await api('GET', base + '/status');
        renderStatus();
      } catch (e) { $('summary').textContent = e.message; }
    }
    async function refreshDeployment() {
      try {
        const [deps, revs] = await Promise.all([api('GET', base + '/deployments'), api('GET', base + '/revisions')]);
        state.deps = deps;
        state.revs = revs;
        const dep = (state.status && state.status.deployment) || deps[0];
        if (dep) {
          state.depID = dep.id;
          state.depEvents = await api('GET', '/api/v1/events?deployment=' + encodeURIComponent(dep.id) + '&limit=10000');
        }
        renderStatus();
        renderProgress();
        renderChecks();
        renderHistory();
      } catch (e) { $('summary').textContent = e.message; }
    }
    const refreshAll = debounce(async () => { await refreshStatus(); await refreshDeployment(); }, 200);

    // Countdowns and the time spent in the current phase, every second.
    function tick() {
      const now = Date.now();
      for (const e of document.querySelectorAll('[data-until]')) {
        const left = new Date(e.dataset.until) - now;
        e.textContent = left > 0 ? ' (in ' + dur(left) + ')' : ' (due)';
      }
      for (const e of document.querySelectorAll('[data-since]')) e.textContent = dur(now - new Date(e.dataset.since)) + ' so far';
    }

    // ---- actions ----
    let pending = null;
    const dialog = $('confirm');
    function confirmAction(title, text, action, payload) {
      pending = { action, payload, title };
      $('confirm-title').textContent = title;
      $('confirm-text').textContent = text;
      dialog.returnValue = '';
      dialog.showModal();
      $('confirm-cancel').focus();
    }
    if (dialog) {
      dialog.addEventListener('close', async () => {
        const p = pending;
        pending = null;
        if (!p || dialog.returnValue !== 'ok') return;
        const out = $('action-result');
        out.className = 'action-result';
        out.textContent = p.title.replace('?', '') + '…';
        try {
          const d = await api('POST', base + '/' + p.action, p.payload);
          out.textContent = p.title.replace('?', '') + ': accepted for deployment ' + d.id + '.';
        } catch (e) {
          out.className = 'action-result bad';
          out.textContent = 'Refused: ' + e.message;
        }
        refreshAll();
      });
      const acts = {
        'promote': ['Promote?', 'Ends what the deployment waits for: the approval, the current pause, or blue\'s keep time.', 'promote', {}],
        'promote-full': ['Promote fully?', 'Sends all production traffic to green at once, skipping the remaining steps.', 'promote', { full: true }],
        'abort': ['Abort the deployment?', 'Production traffic goes back to blue at once and green is stopped.', 'abort', { reason: 'from the dashboard' }],
        'rollback': ['Roll back?', 'Production goes back to the revision live before (a weight flip while blue is warm).', 'rollback', {}],
      };
      for (const [name, a] of Object.entries(acts)) {
        const b = document.querySelector('button[data-action="' + name + '"]');
        if (b) b.addEventListener('click', () => confirmAction(...a));
      }
    }

    (async () => {
      await refreshStatus();
      await refreshDeployment();
      refreshSamples();
      refreshLogs();
      // Stream the app's events from the start of its latest deployment.
      let after = 0;
      if (state.depEvents.length) after = state.depEvents[0].seq - 1;
      follow({ app: APP, after }, (ev) => {
        addEvent(ev);
        refreshAll();
      }, (s) => { $('stream-state').textContent = s === 'live' ? '(live)' : '(reconnecting…)'; });
      setInterval(refreshStatus, 2000);
      setInterval(refreshSamples, 2000);
      setInterval(refreshLogs, 5000);
      setInterval(tick, 1000);
    })();
  }

  if (body.dataset.page === 'apps') appsPage();
  if (body.dataset.page === 'app') appPage();
}());
