// views/console.js: the test console. It POSTs to /api/agent-endpoints/:id/test asking for
// text/event-stream and renders each event as it arrives: thinking steps, tool calls and
// results, the answer token by token, usage after each model call and the final usage.

import { api, streamPost } from '../api.js';
import { h, errorBox, cents, ms, num, pretty, notice } from '../ui.js';
import { endpointHeader } from './endpoints.js';

const enc = encodeURIComponent;

function clip(text, max = 600) {
  const t = typeof text === 'string' ? text : pretty(text);
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/** testConsole renders the streaming test console of one endpoint. */
export async function testConsole(page, { params: [id], signal }) {
  const { endpoint: ep } = await api.get(`/api/agent-endpoints/${enc(id)}`, { signal });

  const input = h('textarea', { id: 'console-input', name: 'input', rows: 4, required: true, placeholder: 'What should the agent do?' });
  const run = h('button', { type: 'submit' }, 'Run');
  const stop = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Stop');
  const state = h('p', { id: 'console-state', class: 'muted', role: 'status' }, 'Ready.');
  const steps = h('ol', { id: 'console-steps', class: 'steps', role: 'log', 'aria-live': 'polite', 'aria-label': 'Steps' });
  const output = h('pre', { id: 'console-output', class: 'output', 'aria-live': 'polite', 'aria-atomic': 'false', 'aria-label': 'Output' });
  const usage = h('dl', { id: 'console-usage', class: 'facts usage' });
  const errors = h('div', { id: 'console-error' });
  const box = h('section', { id: 'console', class: 'console', 'data-state': 'idle', 'aria-labelledby': 'console-result-title' },
    h('h2', { id: 'console-result-title' }, 'Result'),
    state,
    h('div', { class: 'console-grid' },
      h('div', {}, h('h3', {}, 'Steps'), steps),
      h('div', {}, h('h3', {}, 'Output'), output, h('h3', {}, 'Usage'), usage)),
    errors);

  const form = h('form', { class: 'card', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'console-input' }, 'Input'), input,
      h('p', { class: 'hint' }, 'Sent as {"input": …}. Ctrl+Enter runs. Test runs are logged with status “test” and limited to 10 a minute.')),
    h('div', { class: 'actions' }, run, stop));

  let ctrl = null;
  signal.addEventListener('abort', () => ctrl?.abort());
  stop.addEventListener('click', () => ctrl?.abort());
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  const setUsage = (u, final) => {
    const rows = [
      ['Input tokens', num(u.tokens_input)],
      ['Output tokens', num(u.tokens_output)],
      ['Cost', cents(u.cost_cents)],
    ];
    if (final) rows.push(['Latency', ms(u.latency_ms)], ['Iterations', num(u.iterations)]);
    usage.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    usage.dataset.final = final ? 'true' : 'false';
  };

  const step = (kind, seq, ...content) => {
    const li = h('li', { class: `step step-${kind}`, 'data-kind': kind, 'data-seq': String(seq) }, ...content);
    steps.append(li);
    return li;
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (ctrl) return;
    errors.replaceChildren();
    const text = input.value;
    if (!text.trim()) {
      errors.replaceChildren(errorBox(new Error('Type an input first.')));
      input.focus();
      return;
    }
    steps.replaceChildren();
    output.textContent = '';
    usage.replaceChildren();
    delete usage.dataset.final;
    box.dataset.state = 'running';
    box.dataset.tokens = '0';
    box.setAttribute('aria-busy', 'true');
    state.textContent = 'Running…';
    run.disabled = true;
    stop.disabled = false;
    ctrl = new AbortController();
    const total = { tokens_input: 0, tokens_output: 0, cost_cents: 0 };
    let ended = false;
    const tokenNode = document.createTextNode('');
    output.append(tokenNode);

    const onEvent = ({ seq, type, data }) => {
      switch (type) {
        case 'thinking':
          step('thinking', seq, h('span', { class: 'tag' }, 'thinking'), ' ', data.message || data.status || '');
          break;
        case 'token':
          tokenNode.appendData(data.delta ?? '');
          box.dataset.tokens = String(Number(box.dataset.tokens) + 1);
          break;
        case 'tool_call':
          step('tool_call', seq, h('span', { class: 'tag' }, 'tool call'), ' ', h('code', {}, data.tool ?? ''),
            h('pre', { class: 'args' }, clip(data.arguments ?? {})));
          break;
        case 'tool_result':
          step('tool_result', seq, h('span', { class: data.success ? 'tag ok' : 'tag bad' }, data.success ? 'tool result' : 'tool failed'), ' ',
            h('code', {}, data.tool ?? ''), ` · ${ms(data.latency_ms)}`, h('pre', { class: 'result' }, clip(data.result ?? '')));
          break;
        case 'usage':
          total.tokens_input += Number(data.tokens_input) || 0;
          total.tokens_output += Number(data.tokens_output) || 0;
          total.cost_cents += Number(data.cost_cents) || 0;
          setUsage(total, false);
          break;
        case 'done': {
          ended = true;
          if (!tokenNode.data && data.output) tokenNode.appendData(data.output);
          if (data.usage) setUsage(data.usage, true);
          box.dataset.state = 'done';
          state.replaceChildren('Finished. ', data.run_id
            ? h('a', { href: `#/endpoints/${enc(ep.id)}/runs/${enc(data.run_id)}` }, `See run ${data.run_id}`)
            : '');
          break;
        }
        case 'error':
          ended = true;
          box.dataset.state = 'error';
          state.textContent = 'The run failed.';
          errors.replaceChildren(errorBox({ code: data.code, message: data.message ?? 'Unknown error' }));
          break;
        default:
          break; // a newer server's event: ignore
      }
    };

    try {
      await streamPost(`/api/agent-endpoints/${enc(ep.id)}/test`, { input: text }, { signal: ctrl.signal, onEvent });
      if (!ended) {
        box.dataset.state = 'error';
        state.textContent = 'The stream ended without a result.';
      }
    } catch (err) {
      if (err?.name === 'AbortError') {
        box.dataset.state = 'cancelled';
        state.textContent = 'Stopped.';
        if (!signal.aborted) notice('Run stopped: it is logged as cancelled.');
      } else {
        box.dataset.state = 'error';
        state.textContent = 'The run failed.';
        errors.replaceChildren(errorBox(err));
      }
    } finally {
      ctrl = null;
      box.removeAttribute('aria-busy');
      run.disabled = false;
      stop.disabled = true;
    }
  });

  page.append(...endpointHeader(ep, 'console', `Test ${ep.name}`), form, box);
  input.focus();
}
