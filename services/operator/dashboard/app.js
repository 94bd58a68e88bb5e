/* global uPlot */
/**
 * cprec operator dashboard: plain browser JavaScript (no build step) over the operator's REST API,
 * charts by uPlot (served locally from node_modules). Polls every POLL_MS; one poll at a time.
 */
(function () {
  'use strict';

  const POLL_MS = 2500;
  const TOKEN_KEY = 'cprec.operatorToken';
  const PHASES = ['queued', 'warmup', 'stable', 'annealing', 'fine_tuning', 'published'];
  const FINISHED = ['published', 'failed', 'cancelled'];
  const PALETTE = ['#2f6fde', '#e0732c', '#1f9d55', '#a544c9', '#d64545', '#1597a8', '#8a6d1e', '#5a6b8c'];

  const $ = (id) => document.getElementById(id);
  const state = {
    domain: '',
    domains: [],
    hr1Chart: null,
    hr1Key: '',
    markers: [],
    hr1Range: null,
    lossChart: null,
    lossKey: '',
    phaseMarks: [],
    requested: new Map(), // command_id -> ms, trigger commands not yet seen as rounds
    polling: false,
  };

  // ---- helpers ---------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  const pad = (n) => String(n).padStart(2, '0');
  /** Compact local time for tables: 2024-05-01 14:03. */
  const fmtTime = (ms) => {
    if (!ms) return '–';
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  };
  const fmtNum = (v, digits) =>
    v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toFixed(digits);
  const fmtLr = (v) => (v === null || v === undefined ? '–' : Number(v).toExponential(2));
  const shortId = (id) => (id.length > 14 ? id.slice(0, 8) + '…' + id.slice(-4) : id);

  function toast(message, isError) {
    const node = el('div', { class: 'toast' + (isError ? ' error' : ''), text: message });
    $('toasts').append(node);
    setTimeout(() => node.remove(), 6000);
  }

  async function getJson(path) {
    const res = await fetch(path, { headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  // ---- token + mutations -----------------------------------------------------------------------

  function askToken() {
    return new Promise((resolve) => {
      const dialog = $('token-dialog');
      const input = $('token-input');
      input.value = '';
      const finish = (value) => {
        dialog.close();
        $('token-form').onsubmit = null;
        $('token-cancel').onclick = null;
        resolve(value);
      };
      $('token-form').onsubmit = (e) => {
        e.preventDefault();
        const token = input.value.trim();
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
        finish(token || null);
      };
      $('token-cancel').onclick = () => finish(null);
      dialog.showModal();
      input.focus();
    });
  }

  async function mutate(path, body) {
    let token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) token = await askToken();
    if (!token) return null;
    const res = await fetch(path, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
        'x-requested-by': 'dashboard',
      },
      body: JSON.stringify(body),
    });
    const reply = await res.json().catch(() => ({}));
    if (res.status === 401) sessionStorage.removeItem(TOKEN_KEY); // ask again next time
    if (!res.ok) {
      toast(`${res.status}: ${reply.message || 'request failed'}`, true);
      return null;
    }
    return reply;
  }

  async function triggerRound() {
    const button = $('trigger-round');
    button.disabled = true;
    try {
      const reply = await mutate('/v1/rounds', { reason: 'dashboard' });
      if (reply) {
        state.requested.set(reply.command_id, Date.now());
        toast(`Round requested (command ${shortId(reply.command_id)})`);
        void poll();
      }
    } finally {
      button.disabled = false;
    }
  }

  /** Rolls back one domain's adapter (serving holds one per domain; the others are not touched). */
  async function rollback(domain, toAdapterId) {
    const what = toAdapterId ? `to adapter ${toAdapterId}` : 'to its previous adapter';
    if (!window.confirm(`Roll ${domain} back ${what}?`)) return;
    const reply = await mutate('/v1/serving/rollback', {
      domain,
      ...(toAdapterId ? { to_adapter_id: toAdapterId } : {}),
    });
    if (reply) toast(`Rollback of ${domain} requested (command ${shortId(reply.command_id)})`);
  }

  async function promote(adapterId) {
    if (!window.confirm(`Promote adapter ${adapterId}, bypassing the gate?`)) return;
    const reply = await mutate(`/v1/adapters/${encodeURIComponent(adapterId)}/promote`, {
      reason: 'dashboard',
    });
    if (reply) toast(`Promotion requested for ${shortId(adapterId)}`);
  }

  // ---- charts ----------------------------------------------------------------------------------

  /** Vertical lines drawn over the plot (promotions, round starts, alerts, phase boundaries). */
  function markersPlugin(getMarkers) {
    return {
      hooks: {
        draw: [
          (u) => {
            const { ctx, bbox } = u;
            let lastLabelX = -Infinity; // skip a label that would overlap the previous one
            for (const m of getMarkers()) {
              const x = Math.round(u.valToPos(m.x, 'x', true));
              if (x < bbox.left || x > bbox.left + bbox.width) continue;
              ctx.save();
              ctx.strokeStyle = m.color;
              ctx.lineWidth = 1.5 * devicePixelRatio;
              ctx.setLineDash((m.dash || []).map((d) => d * devicePixelRatio));
              ctx.beginPath();
              ctx.moveTo(x, bbox.top);
              ctx.lineTo(x, bbox.top + bbox.height);
              ctx.stroke();
              if (m.label && Math.abs(x - lastLabelX) > 90 * devicePixelRatio) {
                lastLabelX = x;
                ctx.fillStyle = m.color;
                ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
                ctx.fillText(m.label, x + 3 * devicePixelRatio, bbox.top + 12 * devicePixelRatio);
              }
              ctx.restore();
            }
          },
        ],
      },
    };
  }

  function chartWidth(container) {
    return Math.max(300, container.clientWidth);
  }

  function renderHr1(drift) {
    const container = $('hr1-chart');
    const series = drift.series.filter((p) => !state.domain || p.domain === state.domain);
    const domains = [...new Set(series.map((p) => p.domain))].sort();
    if (series.length === 0) {
      if (state.hr1Chart) state.hr1Chart.destroy();
      state.hr1Chart = null;
      state.hr1Key = '';
      container.replaceChildren(el('p', { class: 'empty', text: 'No HR@1 observations yet.' }));
      return;
    }
    // One x per window end (seconds), one y column per domain, null where a domain has no point.
    // A window observed twice on a domain (a new adapter started serving it) shows the newest.
    const xs = [...new Set(series.map((p) => p.window_end_ms))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const columns = domains.map(() => xs.map(() => null));
    const newest = domains.map(() => xs.map(() => -Infinity));
    for (const p of series) {
      const d = domains.indexOf(p.domain);
      const i = index.get(p.window_end_ms);
      if (p.ts_ms < newest[d][i]) continue;
      newest[d][i] = p.ts_ms;
      columns[d][i] = p.hr1;
    }
    const data = [xs.map((x) => x / 1000), ...columns];

    // Markers at the stream time they happened (the newest event ingested then); without a
    // stream clock (no interactions stored), at their wall-clock time.
    const at = (streamMs, wallMs) => (streamMs === null || streamMs === undefined ? wallMs : streamMs) / 1000;
    const inDomain = (d) => !state.domain || d === state.domain;
    state.markers = [
      ...drift.rounds.map((r) => ({
        x: at(r.stream_ms, r.created_ms),
        color: '#8892a3',
        dash: [4, 4],
        label: '',
      })),
      ...drift.promotions.map((p) => ({
        x: at(p.stream_ms, p.ts_ms),
        color: '#1f9d55',
        label: shortId(p.adapter_id),
      })),
      ...drift.alerts
        .filter((a) => inDomain(a.domain))
        .map((a) => ({ x: at(a.stream_ms, a.ts_ms), color: '#d64545', dash: [2, 3], label: '' })),
    ];

    // The x range covers the windows and the markers (uPlot's own guess for one point spans years).
    // …and the stream's present, so the chart ends where the stream is now.
    const now = drift.stream && drift.stream.newest_ms !== null ? [drift.stream.newest_ms / 1000] : [];
    const all = [...data[0], ...state.markers.map((m) => m.x), ...now];
    const lo = Math.min(...all);
    const hi = Math.max(...all);
    const pad = hi > lo ? (hi - lo) * 0.03 : 86400;
    state.hr1Range = [lo - pad, hi + pad];

    const key = domains.join(',');
    if (state.hr1Chart && state.hr1Key === key) {
      state.hr1Chart.setData(data);
      return;
    }
    if (state.hr1Chart) state.hr1Chart.destroy();
    container.replaceChildren();
    state.hr1Key = key;
    state.hr1Chart = new uPlot(
      {
        width: chartWidth(container),
        height: 260,
        scales: {
          x: { time: true, range: () => state.hr1Range },
          y: { range: (u, min, max) => [0, Math.max(0.05, Math.ceil(max * 12) / 10)] },
        },
        series: [
          {},
          ...domains.map((d, i) => ({
            label: d,
            stroke: PALETTE[i % PALETTE.length],
            width: 2,
            spanGaps: true,
            points: { size: 5 },
            value: (u, v) => fmtNum(v, 3),
          })),
        ],
        axes: [{}, { label: 'HR@1', values: (u, ticks) => ticks.map((t) => t.toFixed(2)) }],
        plugins: [markersPlugin(() => state.markers)],
      },
      data,
      container,
    );
  }

  function renderLoss(detail) {
    const container = $('loss-chart');
    const steps = detail ? detail.steps : [];
    if (steps.length === 0) {
      if (state.lossChart) state.lossChart.destroy();
      state.lossChart = null;
      state.lossKey = '';
      container.replaceChildren(el('p', { class: 'empty', text: 'No training steps yet.' }));
      return;
    }
    const data = [steps.map((s) => s.step), steps.map((s) => s.loss), steps.map((s) => s.lr)];
    state.phaseMarks = [];
    steps.forEach((s, i) => {
      if (i === 0 || steps[i - 1].phase !== s.phase)
        state.phaseMarks.push({ x: s.step, color: '#8892a3', dash: [4, 4], label: s.phase });
    });
    const key = detail.round.round_id;
    if (state.lossChart && state.lossKey === key) {
      state.lossChart.setData(data);
      return;
    }
    if (state.lossChart) state.lossChart.destroy();
    container.replaceChildren();
    state.lossKey = key;
    state.lossChart = new uPlot(
      {
        width: chartWidth(container),
        height: 200,
        scales: { x: { time: false }, lr: {} },
        series: [
          { label: 'step' },
          { label: 'loss', stroke: '#2f6fde', width: 2, scale: 'y', value: (u, v) => fmtNum(v, 4) },
          { label: 'LR', stroke: '#e0732c', width: 1.5, scale: 'lr', value: (u, v) => fmtLr(v) },
        ],
        axes: [
          { label: 'step' },
          { label: 'loss', scale: 'y' },
          {
            label: 'LR',
            scale: 'lr',
            side: 1,
            grid: { show: false },
            values: (u, ticks) => ticks.map((t) => t.toExponential(0)),
          },
        ],
        plugins: [markersPlugin(() => state.phaseMarks)],
      },
      data,
      container,
    );
  }

  // ---- panels ----------------------------------------------------------------------------------

  function renderRound(detail) {
    const phases = $('phases');
    const items = [...phases.querySelectorAll('li')];
    if (!detail) {
      $('round-id').textContent = '–';
      $('round-stats').textContent = 'No rounds yet.';
      $('round-progress').style.width = '0';
      items.forEach((li) => (li.className = ''));
      return;
    }
    const r = detail.round;
    $('round-id').textContent = r.round_id;
    const reached = PHASES.indexOf(r.state);
    phases.classList.toggle('failed', r.state === 'failed' || r.state === 'cancelled');
    items.forEach((li, i) => {
      li.className = i === reached ? 'active' : reached >= 0 && i < reached ? 'done' : '';
    });
    const pct =
      r.total_steps > 0 ? Math.min(100, (100 * r.step) / r.total_steps) : r.state === 'published' ? 100 : 0;
    $('round-progress').style.width = `${pct}%`;
    const stats = [
      `state ${r.state}`,
      `step ${r.step}${r.total_steps ? ' / ' + r.total_steps : ''}`,
      `loss ${fmtNum(r.loss, 4)}`,
      `LR ${fmtLr(r.lr)}`,
    ];
    if (r.message) stats.push(r.message);
    $('round-stats').textContent = stats.join(' · ');
  }

  function renderRounds(rounds) {
    const seen = new Set(rounds.map((r) => r.round_id));
    for (const id of state.requested.keys()) if (seen.has(id)) state.requested.delete(id);
    const rows = [];
    for (const [id, ms] of state.requested) {
      rows.push(
        el('tr', { 'data-round-id': id }, [
          el('td', { class: 'mono ellipsis', title: id, text: shortId(id) }),
          el('td', {}, [el('span', { class: 'badge requested', text: 'requested' })]),
          el('td', { text: '–' }),
          el('td', { text: '–' }),
          el('td', { text: '–' }),
          el('td', { text: fmtTime(ms) }),
        ]),
      );
    }
    for (const r of rounds) {
      rows.push(
        el('tr', { 'data-round-id': r.round_id, 'data-state': r.state }, [
          el('td', { class: 'mono ellipsis', title: r.round_id, text: shortId(r.round_id) }),
          el('td', {}, [el('span', { class: `badge ${r.state}`, text: r.state })]),
          el('td', { text: r.total_steps ? `${r.step}/${r.total_steps}` : String(r.step) }),
          el('td', { text: fmtNum(r.loss, 3) }),
          el('td', { class: 'ellipsis', text: r.target_domains.join(', ') || 'default' }),
          el('td', { text: fmtTime(r.created_ms) }),
        ]),
      );
    }
    if (rows.length === 0)
      rows.push(el('tr', {}, [el('td', { colspan: '6', class: 'muted', text: 'No rounds yet.' })]));
    $('rounds-table').tBodies[0].replaceChildren(...rows);
  }

  function renderAdapters(view) {
    const rows = view.adapters.map((a) => {
      const hr1 = Object.entries(a.hr1)
        .map(([d, v]) => `${d} ${v.toFixed(3)}`)
        .join(' · ');
      const actions = [];
      const serving = a.serving_domains || [];
      // Domains of the adapter it does not serve yet: promote (gate bypassed) or, once promoted,
      // roll that domain back to it.
      const notServed = a.target_domains.filter((d) => !serving.includes(d));
      if (a.status !== 'serving' || notServed.length > 0) {
        const promoteButton = el('button', { class: 'small', type: 'button', text: 'promote' });
        promoteButton.onclick = () => void promote(a.adapter_id);
        actions.push(promoteButton);
      }
      if (a.status === 'promoted' || a.status === 'serving')
        for (const domain of notServed) {
          const back = el('button', {
            class: 'small',
            type: 'button',
            'data-serve-domain': domain,
            text: notServed.length > 1 || a.target_domains.length > 1 ? `serve ${domain}` : 'serve',
          });
          back.title = `roll ${domain} back to this adapter`;
          back.onclick = () => void rollback(domain, a.adapter_id);
          actions.push(back);
        }
      return el('tr', { 'data-adapter-id': a.adapter_id }, [
        el('td', { class: 'mono ellipsis', title: a.adapter_id, text: a.adapter_id }),
        el('td', { text: a.adapter_kind }),
        el('td', { class: 'mono', title: a.round_id, text: shortId(a.round_id) }),
        el('td', { class: 'ellipsis', text: a.target_domains.join(', ') }),
        el('td', { text: fmtTime(a.created_ms) }),
        el('td', {
          title: hr1,
          text:
            a.hr1_mean === null
              ? '–'
              : `${a.hr1_mean.toFixed(3)}${Object.keys(a.hr1).length > 1 ? ' (mean)' : ''}`,
        }),
        el('td', {}, [
          el('span', {
            class: `badge ${a.status}`,
            title: a.reasons.join('; '),
            text: serving.length > 0 ? `serving ${serving.join(', ')}` : a.status,
          }),
        ]),
        el('td', {}, actions),
      ]);
    });
    if (rows.length === 0)
      rows.push(el('tr', {}, [el('td', { colspan: '8', class: 'muted', text: 'No adapters yet.' })]));
    $('adapters-table').tBodies[0].replaceChildren(...rows);
  }

  const fmtDay = (ms) => {
    if (ms === null || ms === undefined) return '–';
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  };
  const fmtClock = (ms) => {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  };

  function renderStream(drift) {
    const s = drift.stream;
    $('stream-clock').textContent =
      s && s.newest_ms !== null
        ? `stream at ${fmtDay(s.newest_ms)} · ${s.interactions.toLocaleString('en')} interactions`
        : 'stream: no interactions yet';
  }

  /** Rounds, gate decisions, HR@1 windows and alerts in one list, newest first. */
  function renderTimeline(drift) {
    const events = [];
    for (const r of drift.rounds)
      events.push({
        ts: r.created_ms,
        stream: r.stream_ms,
        kind: 'round',
        text: `round ${shortId(r.round_id)} started (${r.requested_by}) — now ${r.state}`,
      });
    for (const p of drift.decisions || []) {
      const hr1 = Object.entries(p.hr1)
        .map(([d, v]) => `${d} ${Number(v).toFixed(3)}`)
        .join(', ');
      events.push({
        ts: p.ts_ms,
        stream: p.stream_ms,
        kind: p.decision,
        text:
          p.decision === 'promoted'
            ? `promoted ${p.adapter_id}${hr1 ? ` (HR@1 ${hr1})` : ''}`
            : `rejected ${p.adapter_id}: ${(p.reasons[0] || '').slice(0, 140)}`,
      });
    }
    // One entry per evaluation of a window (same observation time and adapter).
    const windows = new Map();
    for (const o of drift.series) {
      const key = `${o.ts_ms}|${o.adapter_id}|${o.window_end_ms}`;
      if (!windows.has(key)) windows.set(key, { o, parts: [] });
      windows.get(key).parts.push(`${o.domain} ${Number(o.hr1).toFixed(3)} (${o.samples})`);
    }
    for (const { o, parts } of windows.values())
      events.push({
        ts: o.ts_ms,
        stream: o.window_end_ms,
        kind: 'observation',
        text: `HR@1 of ${shortId(o.adapter_id)} on ${fmtDay(o.window_start_ms)} → ${fmtDay(o.window_end_ms)}: ${parts.join(' · ')}`,
      });
    for (const a of drift.alerts)
      events.push({
        ts: a.ts_ms,
        stream: a.stream_ms,
        kind: 'alert',
        text: `drift alert on ${a.domain}: HR@1 ${Number(a.hr1).toFixed(3)} vs ${Number(a.baseline_hr1).toFixed(3)} at promotion (−${Math.round(100 * a.relative_drop)}%)${a.refresh_requested ? ', refresh round requested' : ''}`,
      });
    events.sort((a, b) => b.ts - a.ts);
    const items = events
      .slice(0, 80)
      .map((e) =>
        el('li', { 'data-kind': e.kind }, [
          el('span', { class: 'when', text: fmtClock(e.ts) }),
          el('span', { class: 'stream', text: fmtDay(e.stream) }),
          el('span', { class: 'what', text: e.text }),
        ]),
      );
    if (items.length === 0) items.push(el('li', { class: 'muted', text: 'Nothing yet.' }));
    $('timeline').replaceChildren(...items);
  }

  /**
   * One row per domain: the adapter serving it (the base model when none), since when, and a
   * per-domain roll back. Domains come from serving's records and the adapters' target domains; a
   * legacy record (domain '', from when one adapter served every domain) answers the domains
   * without a record of their own.
   */
  function renderServing(serving, adapters) {
    const byDomain = new Map(serving.domains.filter((r) => r.domain !== '').map((r) => [r.domain, r]));
    const legacy = serving.domains.find((r) => r.domain === '') || null;
    const domains = new Set(byDomain.keys());
    for (const a of adapters.adapters)
      if (a.status === 'serving' || a.status === 'promoted') for (const d of a.target_domains) domains.add(d);
    for (const d of Object.keys(adapters.serving || {})) if (d !== '*') domains.add(d);
    const rows = [...domains].sort().map((domain) => {
      const r = byDomain.get(domain) || legacy;
      const adapterId = r ? r.adapter_id : 'base';
      const back = el('button', { class: 'small danger', type: 'button', text: 'roll back' });
      back.title = `roll ${domain} back to its previous adapter`;
      back.onclick = () => void rollback(domain, null);
      return el('tr', { 'data-domain': domain, 'data-adapter-id': adapterId }, [
        el('td', { text: domain }),
        el('td', {
          class: 'mono ellipsis',
          title: adapterId,
          text: adapterId === 'base' ? 'base model (no adapter)' : adapterId,
        }),
        el('td', { text: r ? fmtTime(r.ts_ms) : '–' }),
        el('td', {
          class: 'muted',
          text: r ? (r.domain === '' ? `${r.event} (all domains)` : r.event) : '–',
        }),
        el('td', {}, r && adapterId !== 'base' ? [back] : []),
      ]);
    });
    if (rows.length === 0)
      rows.push(
        el('tr', {}, [
          el('td', { colspan: '5', class: 'muted', text: 'Every domain is served by the base model.' }),
        ]),
      );
    $('serving-table').tBodies[0].replaceChildren(...rows);
    const served = [...domains].sort().map((d) => {
      const r = byDomain.get(d) || legacy;
      return `${d} → ${r ? r.adapter_id : 'base'}`;
    });
    $('serving-badge').textContent =
      served.length > 0 ? `serving: ${served.join(' · ')}` : 'serving: base model';
  }

  function renderDomainFilter(drift) {
    const domains = [...new Set(drift.series.map((p) => p.domain))].sort();
    if (domains.join(',') === state.domains.join(',')) return;
    state.domains = domains;
    const select = $('domain-filter');
    select.replaceChildren(
      el('option', { value: '', text: 'all domains' }),
      ...domains.map((d) => el('option', { value: d, text: d })),
    );
    select.value = domains.includes(state.domain) ? state.domain : '';
  }

  // ---- polling ---------------------------------------------------------------------------------

  async function poll() {
    if (state.polling) return;
    state.polling = true;
    try {
      const [drift, adapters, rounds, serving] = await Promise.all([
        getJson('/v1/drift'),
        getJson('/v1/adapters?limit=100'),
        getJson('/v1/rounds?limit=30'),
        getJson('/v1/serving?limit=10'),
      ]);
      // The live round: the newest unfinished one, else the newest.
      const live = rounds.rounds.find((r) => !FINISHED.includes(r.state)) || rounds.rounds[0];
      const detail = live
        ? await getJson(`/v1/rounds/${encodeURIComponent(live.round_id)}?max_points=1500`)
        : null;
      renderDomainFilter(drift);
      renderHr1(drift);
      renderStream(drift);
      renderTimeline(drift);
      renderRound(detail);
      renderLoss(detail);
      renderRounds(rounds.rounds);
      renderAdapters(adapters);
      renderServing(serving, adapters);
      $('refresh-status').textContent = `updated ${new Date().toLocaleTimeString()}`;
      $('refresh-status').classList.remove('error');
    } catch (err) {
      $('refresh-status').textContent = `refresh failed: ${err.message}`;
      $('refresh-status').classList.add('error');
    } finally {
      state.polling = false;
    }
  }

  $('trigger-round').addEventListener('click', () => void triggerRound());
  $('domain-filter').addEventListener('change', (e) => {
    state.domain = e.target.value;
    state.hr1Key = '';
    void poll();
  });
  window.addEventListener('resize', () => {
    if (state.hr1Chart) state.hr1Chart.setSize({ width: chartWidth($('hr1-chart')), height: 260 });
    if (state.lossChart) state.lossChart.setSize({ width: chartWidth($('loss-chart')), height: 200 });
  });

  void poll();
  setInterval(() => void poll(), POLL_MS);
})();
