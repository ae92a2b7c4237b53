// views/runs.js: an endpoint's run history (status filter, cursor pagination) and one run in
// full: input, output, tool calls and error.

import { api, qs } from '../api.js';
import { h, errorBox, tableWrap, when, statusBadge, cents, ms, num, pretty } from '../ui.js';
import { endpointHeader } from './endpoints.js';

const enc = encodeURIComponent;
const STATUSES = ['running', 'success', 'error', 'timeout', 'cancelled', 'test'];
const PAGE = 25;

/** runList renders the runs table of one endpoint. */
export async function runList(page, { params: [id], query, signal, go }) {
  const { endpoint: ep } = await api.get(`/api/agent-endpoints/${enc(id)}`, { signal });
  const status = query.get('status') ?? '';
  const filter = h('select', { id: 'run-status', name: 'status' },
    h('option', { value: '' }, 'All'),
    STATUSES.map((st) => h('option', { value: st, selected: st === status }, st)));
  filter.addEventListener('change', () => {
    go(`/endpoints/${enc(id)}/runs${filter.value ? `?status=${enc(filter.value)}` : ''}`);
  });
  const area = h('div', { id: 'runs-area', 'aria-live': 'polite' });
  const pager = h('div', { class: 'actions pager' });
  const cursors = []; // cursors of the pages before the one on screen, for "Newer"
  let cursor = '';

  const load = async () => {
    area.setAttribute('aria-busy', 'true');
    try {
      const res = await api.get(`/api/agent-endpoints/${enc(id)}/runs${qs({ limit: PAGE, status, cursor })}`, { signal });
      const runs = res?.runs ?? [];
      if (runs.length === 0) {
        area.replaceChildren(h('p', { class: 'muted', id: 'runs-empty' }, status ? `No runs with status “${status}”.` : 'No runs yet. Try the test console.'));
      } else {
        const rows = runs.map((r) => h('tr', { 'data-run': r.id },
          h('td', {}, statusBadge(r.status)),
          h('th', { scope: 'row' }, h('a', { href: `#/endpoints/${enc(id)}/runs/${enc(r.id)}` }, when(r.created_at))),
          h('td', { class: 'num' }, ms(r.latency_ms)),
          h('td', { class: 'num' }, `${num(r.tokens_input)} / ${num(r.tokens_output)}`),
          h('td', { class: 'num' }, cents(r.cost_cents)),
          h('td', {}, h('code', { class: 'small' }, r.id))));
        area.replaceChildren(tableWrap('Runs', h('table', { id: 'runs-table' },
          h('caption', { class: 'sr-only' }, 'Runs, newest first'),
          h('thead', {}, h('tr', {}, ['Status', 'Time', 'Latency', 'Tokens in / out', 'Cost', 'Run'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, rows)), { stack: true }));
      }
      const newer = h('button', { type: 'button', class: 'secondary', disabled: cursors.length === 0 }, '← Newer');
      newer.addEventListener('click', () => {
        cursor = cursors.pop() ?? '';
        load().catch(() => {});
      });
      const next = h('button', { type: 'button', class: 'secondary', disabled: !res?.next_cursor }, 'Next →');
      next.addEventListener('click', () => {
        cursors.push(cursor);
        cursor = res.next_cursor;
        load().then(() => area.querySelector('a')?.focus()).catch(() => {});
      });
      // One page only: no pager at all.
      pager.replaceChildren(...(cursors.length === 0 && !res?.next_cursor ? [] : [newer, next]));
    } catch (err) {
      if (err.name === 'AbortError') return;
      area.replaceChildren(errorBox(err, 'Could not load runs'));
    } finally {
      area.removeAttribute('aria-busy');
    }
  };

  page.append(
    ...endpointHeader(ep, 'runs', `Runs of ${ep.name}`),
    h('div', { class: 'field inline' }, h('label', { for: 'run-status' }, 'Status'), filter),
    area,
    pager,
  );
  await load();
}

/** runDetail renders one run. */
export async function runDetail(page, { params: [id, runId], signal }) {
  const [{ endpoint: ep }, { run }] = await Promise.all([
    api.get(`/api/agent-endpoints/${enc(id)}`, { signal }),
    api.get(`/api/agent-endpoints/${enc(id)}/runs/${enc(runId)}`, { signal }),
  ]);
  const row = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
  const calls = Array.isArray(run.tool_calls) ? run.tool_calls : [];
  const err = run.error && typeof run.error === 'object' ? run.error : run.error ? { message: String(run.error) } : null;
  page.append(
    ...endpointHeader(ep, 'runs', `Run ${run.id}`),
    h('p', {}, h('a', { href: `#/endpoints/${enc(id)}/runs` }, '← All runs')),
    h('dl', { class: 'facts', id: 'run-facts' },
      row('Status', statusBadge(run.status)),
      row('Started', when(run.created_at)),
      row('Finished', when(run.finished_at)),
      row('Latency', ms(run.latency_ms)),
      row('Time to first token', ms(run.ttft_ms)),
      row('Tokens in / out', `${num(run.tokens_input)} / ${num(run.tokens_output)}`),
      row('Cost', cents(run.cost_cents)),
      row('Charged', cents(run.charged_cents)),
      row('Iterations', num(run.iterations))),
    err ? h('section', { class: 'card error-card', id: 'run-error', 'aria-labelledby': 'run-error-title' },
      h('h2', { id: 'run-error-title' }, 'Error'),
      h('p', {}, err.code ? h('code', {}, err.code) : null, ' ', err.message ?? '')) : '',
    h('section', { 'aria-labelledby': 'run-input-title' }, h('h2', { id: 'run-input-title' }, 'Input'),
      h('pre', { id: 'run-input', class: 'output' }, pretty(run.input))),
    h('section', { 'aria-labelledby': 'run-output-title' }, h('h2', { id: 'run-output-title' }, 'Output'),
      h('pre', { id: 'run-output', class: 'output' }, run.output ?? '')),
    h('section', { 'aria-labelledby': 'run-tools-title' }, h('h2', { id: 'run-tools-title' }, `Tool calls (${calls.length})`),
      calls.length === 0 ? h('p', { class: 'muted' }, 'No tool was called.') : h('ol', { id: 'run-tool-calls', class: 'steps' },
        calls.map((c) => h('li', { class: 'step', 'data-tool': c.name ?? c.tool ?? '' },
          h('span', { class: c.success === false ? 'tag bad' : 'tag ok' }, c.success === false ? 'failed' : 'ok'), ' ',
          h('code', {}, c.name ?? c.tool ?? ''), ` · ${ms(c.latencyMs ?? c.latency_ms)}`,
          h('h3', { class: 'sub' }, 'Arguments'), h('pre', { class: 'args' }, pretty(c.arguments ?? {})),
          h('h3', { class: 'sub' }, 'Result'), h('pre', { class: 'result' }, typeof c.result === 'string' ? c.result : pretty(c.result)))))),
  );
}
