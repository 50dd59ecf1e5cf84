// The quorumkv dashboard: polls /dashboard/state on the node that served this page and draws it.
// Plain browser JavaScript, no dependencies, nothing fetched from anywhere else.

(() => {
  const SVG = 'http://www.w3.org/2000/svg';
  const TOKENS = 2 ** 32;
  const WINDOW_S = 300; // seconds of history the plots show (what a node keeps)
  const MAX_EVENTS = 100;
  const MOVING = '#ff6b00';
  /** The plots' series: indexes into a sample. */
  const THROUGHPUT = [
    { index: 1, cls: 'reads' },
    { index: 2, cls: 'writes' },
  ];
  const P99 = [
    { index: 4, cls: 'reads' },
    { index: 5, cls: 'writes' },
  ];
  const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1', '#edc948', '#9c755f', '#ff9da7', '#bab0ac'];

  /** Per node: samples [t, reads, writes, errors, readP99Ms, writeP99Ms], oldest first, at most WINDOW_S. */
  const history = new Map();
  /** Per member: the state and status last shown, to log changes. */
  const seen = new Map();
  const events = [];
  let since = 0;
  let lastOk = 0;
  let firstRender = true;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    for (const c of children) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  function ago(ms) {
    if (ms === null || ms === undefined) return '–';
    return ms < 10_000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(0)} s`;
  }

  function count(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : '–';
  }

  function colorOf(owners, id) {
    const i = owners.indexOf(id);
    return COLORS[Math.max(i, 0) % COLORS.length];
  }

  function swatch(color) {
    return svg(
      'svg',
      { class: 'swatch', width: 12, height: 12, viewBox: '0 0 12 12' },
      svg('rect', { width: 12, height: 12, rx: 2, fill: color }),
    );
  }

  // ---- the ring -----------------------------------------------------------------------------------

  function point(token, r, c) {
    const a = (token / TOKENS) * 2 * Math.PI - Math.PI / 2;
    return [c + r * Math.cos(a), c + r * Math.sin(a)];
  }

  /** A slice of an annulus from token lo (exclusive) clockwise to hi. */
  function arcPath(lo, hi, inner, outer, c) {
    let span = (hi - lo + TOKENS) % TOKENS;
    if (span === 0) span = TOKENS - 1;
    const end = lo + span;
    const large = span > TOKENS / 2 ? 1 : 0;
    const [x1, y1] = point(lo, outer, c);
    const [x2, y2] = point(end, outer, c);
    const [x3, y3] = point(end, inner, c);
    const [x4, y4] = point(lo, inner, c);
    const f = (x) => x.toFixed(2);
    return `M${f(x1)},${f(y1)} A${outer},${outer} 0 ${large} 1 ${f(x2)},${f(y2)} L${f(x3)},${f(y3)} A${inner},${inner} 0 ${large} 0 ${f(x4)},${f(y4)} Z`;
  }

  function drawRing(ring, members) {
    const size = 320;
    const c = size / 2;
    const root = svg('svg', { width: size, height: size, viewBox: `0 0 ${size} ${size}`, role: 'img', 'aria-label': 'token ring' });
    const arcs = svg('g', {});
    const moving = svg('g', {});
    for (const [lo, hi, owner, isMoving] of ring.arcs) {
      const id = ring.owners[owner] ?? '?';
      const title = svg('title', {}, `${id}: tokens ${lo + 1}..${hi}${isMoving ? ' (moving)' : ''}`);
      arcs.append(
        svg(
          'path',
          { d: arcPath(lo, hi, 92, 132, c), fill: colorOf(ring.owners, id), stroke: '#fff', 'stroke-width': 0.4, 'data-owner': id },
          title,
        ),
      );
      if (isMoving) moving.append(svg('path', { d: arcPath(lo, hi, 136, 150, c), fill: MOVING, class: 'arc-moving', 'data-moving': id }));
    }
    root.append(arcs, moving);
    const movers = Object.entries(ring.moving);
    root.append(
      svg(
        'text',
        { x: c, y: c - 10, 'text-anchor': 'middle', 'font-size': 15, 'font-weight': 600 },
        `${ring.owners.length} members, N=${ring.replication_factor}`,
      ),
      svg('text', { x: c, y: c + 10, 'text-anchor': 'middle', 'font-size': 12, fill: '#6b7480' }, `${ring.vnodes} tokens each`),
      svg(
        'text',
        { x: c, y: c + 28, 'text-anchor': 'middle', 'font-size': 12, fill: movers.length ? MOVING : '#2f9e44' },
        movers.length ? movers.map(([id, s]) => `${id} ${s}`).join(', ') : 'stable',
      ),
    );
    document.getElementById('ring').replaceChildren(root);
    const legend = ring.owners.map((id) => {
      const m = members.find((x) => x.id === id);
      return el('span', {}, swatch(colorOf(ring.owners, id)), `${id}${m ? ` (${m.state})` : ''}`);
    });
    if (movers.length) legend.push(el('span', {}, swatch(MOVING), 'ranges moving'));
    document.getElementById('ring-legend').replaceChildren(...legend);
  }

  // ---- members ------------------------------------------------------------------------------------

  function drawMembers(members, nodes) {
    const rows = members.map((m) => {
      const n = nodes[m.id] || {};
      const status = el('td', { class: `status-${m.status}` }, m.status);
      if (m.progress !== undefined) status.append(' ', el('progress', { max: 1, value: m.progress, 'data-member-progress': m.id }));
      return el(
        'tr',
        { 'data-member': m.id, 'data-state': m.state, 'data-status': m.status },
        el('td', {}, el('strong', {}, m.id)),
        el('td', {}, m.address),
        status,
        el('td', {}, el('span', { class: `badge ${m.state}` }, m.state)),
        el('td', { class: 'num' }, m.phi.toFixed(2)),
        el('td', { class: 'num' }, ago(m.last_heartbeat_ms_ago)),
        el('td', { class: 'num', title: `started ${new Date(m.generation).toISOString()}` }, m.generation),
        el('td', { class: 'num' }, n.ok ? count(n.keys) : '–'),
        el('td', { class: 'num' }, n.ok ? count(n.hints_pending) : '–'),
      );
    });
    document.querySelector('#members tbody').replaceChildren(...rows);
  }

  function logChanges(members, nowMs) {
    for (const m of members) {
      const before = seen.get(m.id);
      if (before) {
        if (before.state !== m.state) addEvent(nowMs, m.id, 'state', before.state, m.state);
        if (before.status !== m.status) addEvent(nowMs, m.id, 'status', before.status, m.status);
      } else if (!firstRender) {
        addEvent(nowMs, m.id, 'status', 'new member', m.status);
      }
      seen.set(m.id, { state: m.state, status: m.status });
    }
    firstRender = false;
  }

  function addEvent(nowMs, id, field, from, to) {
    events.unshift({ nowMs, id, field, from, to });
    if (events.length > MAX_EVENTS) events.pop();
    const items = events.map((e) =>
      el(
        'li',
        { 'data-member': e.id, 'data-field': e.field, 'data-to': e.to },
        el('time', {}, clock(e.nowMs)),
        `${e.id}: ${e.from} → ${e.to}`,
      ),
    );
    document.getElementById('events').replaceChildren(...items);
  }

  // ---- joins, decommissions, repairs --------------------------------------------------------------

  function moveFraction(move) {
    if (move.phase === 'done') return 1;
    return move.ranges_total > 0 ? move.ranges_done / move.ranges_total : 0;
  }

  function drawWork(nodes, nowMs) {
    const items = [];
    for (const [id, n] of Object.entries(nodes)) {
      if (!n.ok) continue;
      const mv = n.move;
      if (mv && (mv.finished_at_ms === null || nowMs - mv.finished_at_ms < 10 * 60_000)) {
        const done = mv.phase === 'done';
        const verb = { join: 'joins', leave: 'is decommissioned', remove: `removes ${mv.target}` }[mv.kind] || mv.kind;
        items.push(
          el(
            'div',
            { class: 'work-item', 'data-move': id, 'data-kind': mv.kind, 'data-phase': mv.phase, 'data-done': done },
            el('div', { class: 'title' }, `${id} ${verb}: ${mv.phase}${done ? ` at ${clock(mv.finished_at_ms)}` : ''}`),
            el('progress', { max: 1, value: moveFraction(mv) }),
            ' ',
            `${mv.ranges_done}/${mv.ranges_total} ranges, ${count(mv.records_streamed)} records`,
            mv.waiting_for ? el('div', { class: 'detail' }, `waiting for ${mv.waiting_for}`) : null,
            mv.error ? el('div', { class: 'detail' }, `error: ${mv.error}`) : null,
          ),
        );
      }
      const r = n.repair;
      if (r && (r.running || nowMs - (r.finished_at_ms ?? 0) < 10 * 60_000)) {
        items.push(
          el(
            'div',
            { class: 'work-item', 'data-repair': id, 'data-done': !r.running },
            el(
              'div',
              { class: 'title' },
              `${id} ${r.kind === 'repair' ? 'repair' : 'background anti-entropy'}: ${r.running ? 'running' : `done at ${clock(r.finished_at_ms)}`}`,
            ),
            el('progress', { max: 1, value: r.ranges_total > 0 ? r.ranges_done / r.ranges_total : r.running ? 0 : 1 }),
            ' ',
            `${r.ranges_done}/${r.ranges_total} ranges, ${count(r.keys_compared)} keys compared, ${count(r.keys_repaired)} repaired${r.errors ? `, ${r.errors} errors` : ''}`,
          ),
        );
      }
    }
    document.getElementById('work').replaceChildren(...(items.length ? items : [el('p', { class: 'quiet' }, 'nothing under way')]));
  }

  // ---- per-node plots -----------------------------------------------------------------------------

  function remember(id, samples) {
    const h = history.get(id) || [];
    const last = h.length ? h[h.length - 1][0] : 0;
    for (const s of samples) if (s[0] > last) h.push(s);
    while (h.length > WINDOW_S) h.shift();
    history.set(id, h);
  }

  function plot(name, samples, series, nowS, unit) {
    const w = 400;
    const hgt = 90;
    const left = 50;
    const bottom = 14;
    const max = Math.max(1, ...samples.flatMap((s) => series.map((x) => s[x.index] ?? 0)));
    const x = (t) => left + ((t - (nowS - WINDOW_S)) / WINDOW_S) * (w - left - 4);
    const y = (v) => 4 + (1 - v / max) * (hgt - bottom - 8);
    const root = svg('svg', { class: 'plot', 'data-plot': name, width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}` });
    root.append(
      svg('line', { class: 'axis', x1: left, y1: y(0), x2: w - 4, y2: y(0) }),
      svg('line', { class: 'axis', x1: left, y1: y(max), x2: w - 4, y2: y(max) }),
      svg('text', { x: left - 4, y: y(max) + 4, 'text-anchor': 'end' }, `${max >= 100 ? Math.round(max) : max.toFixed(1)}${unit}`),
      svg('text', { x: left - 4, y: y(0) + 3, 'text-anchor': 'end' }, `0${unit}`),
      svg('text', { x: left, y: hgt - 2 }, '-5 min'),
      svg('text', { x: w - 4, y: hgt - 2, 'text-anchor': 'end' }, 'now'),
    );
    for (const s of series) {
      const pts = samples
        .filter((p) => p[s.index] !== null && p[0] > nowS - WINDOW_S)
        .map((p) => `${x(p[0]).toFixed(1)},${y(p[s.index]).toFixed(1)}`);
      if (pts.length) root.append(svg('polyline', { class: s.cls, points: pts.join(' ') }));
    }
    return root;
  }

  function drawNodes(members, nodes, nowMs) {
    const nowS = Math.round(nowMs / 1000);
    const cards = members.map((m) => {
      const n = nodes[m.id] || { ok: false, error: 'no answer' };
      if (n.ok) remember(m.id, n.samples);
      const h = history.get(m.id) || [];
      const lastS = h[h.length - 1];
      const card = el(
        'div',
        { class: 'node', 'data-node': m.id },
        el('h3', {}, `${m.id} `, el('span', { class: `badge ${m.state}` }, m.state)),
      );
      if (n.ok) {
        card.append(
          el(
            'div',
            { class: 'figures' },
            `${count(n.keys)} keys · ${count(n.hints_pending)} hints pending · ${count(n.inflight_requests)} in flight`,
          ),
        );
      } else {
        card.append(el('div', { class: 'unreachable' }, `figures unavailable: ${n.error}`));
      }
      card.append(
        el(
          'div',
          { class: 'figures' },
          el('span', { class: 'key-reads' }, 'reads'),
          ` ${lastS ? count(lastS[1]) : '–'}/s, `,
          el('span', { class: 'key-writes' }, 'writes'),
          ` ${lastS ? count(lastS[2]) : '–'}/s${lastS?.[3] ? `, ${count(lastS[3])} errors/s` : ''}`,
        ),
        plot('throughput', h, THROUGHPUT, nowS, '/s'),
        el(
          'div',
          { class: 'figures' },
          'p99 latency: ',
          el('span', { class: 'key-reads' }, 'reads'),
          ` ${lastS?.[4] != null ? `${lastS[4].toFixed(1)} ms` : '–'}, `,
          el('span', { class: 'key-writes' }, 'writes'),
          ` ${lastS?.[5] != null ? `${lastS[5].toFixed(1)} ms` : '–'}`,
        ),
        plot('p99', h, P99, nowS, ' ms'),
      );
      return card;
    });
    document.getElementById('nodes').replaceChildren(...cards);
  }

  // ---- the loop -----------------------------------------------------------------------------------

  function render(data) {
    const nowMs = data.now_ms;
    const alive = data.members.filter((m) => m.state === 'alive').length;
    document.getElementById('summary').textContent =
      `served by ${data.served_by} · ${data.members.length} members, ${alive} alive · ring ${data.ring.checksum}${data.ring.stable ? '' : ' (moving)'}`;
    logChanges(data.members, nowMs);
    drawRing(data.ring, data.members);
    drawMembers(data.members, data.nodes);
    drawWork(data.nodes, nowMs);
    drawNodes(data.members, data.nodes, nowMs);
    let newest = 0;
    for (const h of history.values()) if (h.length) newest = Math.max(newest, h[h.length - 1][0]);
    since = Math.max(0, newest - 5); // a little overlap: a member answering late still fills in
  }

  function connection(ok, detail) {
    const c = document.getElementById('connection');
    c.dataset.ok = String(ok);
    c.textContent = ok
      ? `updated ${clock(lastOk)}`
      : `no answer from this node since ${lastOk ? clock(lastOk) : 'the page opened'}: ${detail}`;
  }

  async function poll() {
    let delayMs = 500;
    try {
      const res = await fetch(`/dashboard/state?since=${since}`, { cache: 'no-store', signal: AbortSignal.timeout(5_000) });
      if (!res.ok) throw new Error(`it answered ${res.status}`);
      const data = await res.json();
      delayMs = data.poll_ms || delayMs;
      lastOk = Date.now();
      render(data);
      connection(true);
    } catch (err) {
      connection(false, err instanceof Error ? err.message : String(err));
      delayMs = 2_000;
    }
    setTimeout(poll, delayMs);
  }

  poll();
})();
