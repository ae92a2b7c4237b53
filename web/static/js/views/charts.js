// views/charts.js: runs, latency, tokens and cost over time for one endpoint, drawn as
// inline SVG (no library). Each chart has a <title> and <desc> and a data table fallback.

import { api, qs } from '../api.js';
import { h, s, id as uid, errorBox, tableWrap, cents, ms, num } from '../ui.js';
import { endpointHeader } from './endpoints.js';

const enc = encodeURIComponent;
const RANGES = [
  { value: '60', label: 'Last hour', minutes: 60, bucket: 60 },
  { value: '360', label: 'Last 6 hours', minutes: 360, bucket: 300 },
  { value: '1440', label: 'Last 24 hours', minutes: 1440, bucket: 1800 },
];
const H = 200;
const M = { l: 72, r: 16, t: 14, b: 34 };

// niceMax rounds v up to 1, 2 or 5 times a power of ten so gridlines land on round numbers.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function clock(t) {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * chart draws buckets as bars or lines. series: [{key, label}], drawn in order; bars of later
 * series are drawn over earlier ones (errors over runs), lines after the first are dashed.
 * integer keeps gridlines on whole numbers (counts); sparse leaves buckets without runs out
 * of a line (a latency of "0 ms" where nothing ran would be a lie).
 */
function chart({ key, title, desc, buckets, series, kind, fmt, W, integer = false, sparse = false }) {
  const titleId = uid('chart-title');
  const descId = uid('chart-desc');
  const n = buckets.length;
  const values = series.map((se) => buckets.map((b) => Number(b[se.key]) || 0));
  let top = niceMax(Math.max(0, ...values.flat()));
  if (integer && !Number.isInteger(top / 2)) top *= 2;
  const present = buckets.map((b) => !sparse || Number(b.runs) > 0);
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const band = n > 0 ? pw / n : pw;
  const y = (v) => M.t + ph - (v / top) * ph;
  const xc = (i) => M.l + (i + 0.5) * band;

  const grid = [0, top / 2, top].map((v) => s('g', { class: 'grid' },
    s('line', { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }),
    s('text', { x: M.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v))));
  const ticks = n === 0 ? [] : [...new Set([0, Math.floor((n - 1) / 2), n - 1])].map((i) =>
    s('text', { class: 'tick', x: xc(i), y: H - 8, 'text-anchor': i === 0 && n > 1 ? 'start' : i === n - 1 && n > 1 ? 'end' : 'middle' }, clock(buckets[i].start)));

  const marks = series.map((se, si) => {
    if (kind === 'bar') {
      const w = Math.max(1, band * 0.8);
      return s('g', { class: `series s${si + 1}` }, values[si].map((v, i) => v > 0
        ? s('rect', { class: 'bar', x: M.l + i * band + (band - w) / 2, y: y(v), width: w, height: Math.max(0.5, M.t + ph - y(v)) },
          s('title', {}, `${clock(buckets[i].start)}: ${fmt(v)} ${se.label.toLowerCase()}`))
        : null));
    }
    // One path; a bucket left out starts a new segment.
    const d = values[si].map((v, i) => (present[i] ? `${i > 0 && present[i - 1] ? 'L' : 'M'}${xc(i).toFixed(1)},${y(v).toFixed(1)}` : '')).join('');
    return s('g', { class: `series s${si + 1}` },
      d ? s('path', { class: 'line', d }) : null,
      n <= 96 || sparse ? values[si].map((v, i) => (present[i] ? s('circle', { class: 'dot', cx: xc(i), cy: y(v), r: 2.5 },
        s('title', {}, `${clock(buckets[i].start)}: ${se.label} ${fmt(v)}`)) : null)) : null);
  });

  const svg = s('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${titleId} ${descId}`,
    'data-chart': key, 'data-points': String(n), 'data-total': String(values[0].reduce((a, b) => a + b, 0)),
  },
  s('title', { id: titleId }, title),
  s('desc', { id: descId }, desc),
  s('line', { class: 'axis', x1: M.l, x2: W - M.r, y1: M.t + ph, y2: M.t + ph }),
  grid, marks, ticks);

  const legend = h('ul', { class: 'legend', 'aria-hidden': 'true' },
    series.map((se, si) => h('li', {}, h('span', { class: `swatch s${si + 1} ${kind}` }), se.label)));
  const table = h('table', { class: 'data' },
    h('caption', {}, `${title}: data`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Start'), series.map((se) => h('th', { scope: 'col' }, se.label)))),
    h('tbody', {}, buckets.map((b, i) => h('tr', {},
      h('th', { scope: 'row' }, h('time', { datetime: b.start }, clock(b.start))),
      series.map((_, si) => h('td', { class: 'num' }, present[i] ? fmt(values[si][i]) : '—'))))));
  return h('figure', { class: 'card chart-card', 'data-chart': key },
    h('figcaption', {}, h('h2', {}, title)),
    svg, legend,
    h('details', {}, h('summary', {}, 'Show the data as a table'), tableWrap(`${title} data`, table)));
}

function sum(buckets, k) {
  return buckets.reduce((a, b) => a + (Number(b[k]) || 0), 0);
}

// chartWidth is the width the charts are drawn at: the width of one chart card in the grid
// (two side by side from 2 × 30rem, else one), so that text is drawn at about its CSS size.
function chartWidth(area) {
  const w = area.clientWidth;
  const card = w >= 2 * 480 + 16 ? (w - 16) / 2 : w;
  return Math.round(Math.min(640, Math.max(300, card - 42)));
}

function draw(area, buckets, range) {
  const per = range.bucket === 60 ? 'minute' : `${range.bucket / 60} minutes`;
  const span = range.label.toLowerCase();
  if (buckets.length === 0 || sum(buckets, 'runs') === 0) {
    area.replaceChildren(h('p', { class: 'muted', id: 'charts-empty' }, `No runs in the ${span}. Try the test console.`));
    return;
  }
  const runs = sum(buckets, 'runs');
  const errors = sum(buckets, 'errors');
  const maxP95 = Math.max(0, ...buckets.map((b) => Number(b.p95_ms) || 0));
  const tin = sum(buckets, 'tokens_input');
  const tout = sum(buckets, 'tokens_output');
  const cost = sum(buckets, 'cost_cents');
  const W = chartWidth(area);
  area.replaceChildren(
    chart({ key: 'runs', title: `Runs per ${per}`, kind: 'bar', buckets, W, integer: true, fmt: (v) => num(Math.round(v * 100) / 100),
      desc: `${runs} runs and ${errors} errors in the ${span}.`,
      series: [{ key: 'runs', label: 'Runs' }, { key: 'errors', label: 'Errors' }] }),
    chart({ key: 'latency', title: 'Latency (p50 and p95)', kind: 'line', buckets, W, fmt: ms, sparse: true,
      desc: `The slowest p95 latency in the ${span} was ${ms(maxP95)}.`,
      series: [{ key: 'p50_ms', label: 'p50' }, { key: 'p95_ms', label: 'p95' }] }),
    chart({ key: 'tokens', title: 'Tokens', kind: 'line', buckets, W, fmt: (v) => num(Math.round(v)),
      desc: `${num(tin)} input and ${num(tout)} output tokens in the ${span}.`,
      series: [{ key: 'tokens_input', label: 'Input tokens' }, { key: 'tokens_output', label: 'Output tokens' }] }),
    chart({ key: 'cost', title: 'Cost', kind: 'bar', buckets, W, fmt: cents,
      desc: `${cents(cost)} of token cost in the ${span}.`,
      series: [{ key: 'cost_cents', label: 'Cost' }] }),
  );
}

/** charts renders the charts page of one endpoint. */
export async function charts(page, { params: [id], query, signal, go }) {
  const { endpoint: ep } = await api.get(`/api/agent-endpoints/${enc(id)}`, { signal });
  const range = RANGES.find((r) => r.value === query.get('range')) ?? RANGES[0];
  const select = h('select', { id: 'chart-range', name: 'range' },
    RANGES.map((r) => h('option', { value: r.value, selected: r === range }, r.label)));
  select.addEventListener('change', () => go(`/endpoints/${enc(id)}/charts?range=${enc(select.value)}`));
  const area = h('div', { class: 'charts', id: 'charts-area' }, h('p', { class: 'muted' }, 'Loading…'));
  page.append(
    ...endpointHeader(ep, 'charts', `Charts for ${ep.name}`),
    h('div', { class: 'field inline' }, h('label', { for: 'chart-range' }, 'Period'), select),
    area,
  );
  try {
    const res = await api.get(`/api/agent-endpoints/${enc(id)}/stats${qs({ minutes: range.minutes, bucket: range.bucket })}`, { signal });
    draw(area, res?.buckets ?? [], range);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    area.replaceChildren(errorBox(err, 'Could not load statistics'));
  }
}
