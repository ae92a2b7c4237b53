// views/endpoints.js: the endpoint list, the create/edit form (every field of SPEC §4, with
// the API's validation message shown next to the field it names), and the endpoint page: run
// URL, a ready-to-paste curl line, the API key shown once, regenerate and delete.

import { api } from '../api.js';
import {
  h, field, busy, errorBox, tableWrap, when, confirmDialog, copyButton,
  setFieldError, clearFieldErrors, fieldFor, shellQuote, pretty, num,
} from '../ui.js';

const enc = encodeURIComponent;

// Keys the API returned on create or regenerate, waiting to be shown once on the endpoint
// page. Reading one deletes it: the key is never shown twice.
const freshKeys = new Map();

/** FIELDS describes the endpoint form, in SPEC §4 order, with the API's defaults. */
const FIELDS = [
  { name: 'name', label: 'Name', kind: 'text', required: true, max: 100 },
  { name: 'workspace_id', label: 'Workspace', kind: 'workspace', hint: 'The endpoint may call the tools of this workspace. Without one it has no tools.' },
  { name: 'system_prompt', label: 'System prompt', kind: 'textarea', required: true, rows: 6, max: 10000 },
  { name: 'description', label: 'Description', kind: 'textarea', rows: 2, max: 500, nullable: true },
  { name: 'slug', label: 'Slug', kind: 'text', hint: 'Lowercase letters, digits and dashes; derived from the name when empty. The run URL is /api/run/<slug>.' },
  { name: 'agent_type', label: 'Agent type', kind: 'select', options: ['extractor', 'actor', 'pipeline'], def: 'extractor' },
  { name: 'llm_provider', label: 'Model provider', kind: 'select', options: ['openai', 'anthropic', 'gemini', 'groq', 'custom', 'demo'], def: 'openai' },
  { name: 'llm_model', label: 'Model', kind: 'text', def: 'gpt-4o-mini', max: 100 },
  { name: 'llm_base_url', label: 'Model base URL', kind: 'url', hint: 'Required for the custom provider: an OpenAI-compatible chat-completions base URL.' },
  { name: 'llm_api_key', label: 'Model API key', kind: 'secret', hint: 'Bring your own key (optional). Stored encrypted and never shown again.' },
  { name: 'max_tokens', label: 'Max tokens', kind: 'int', def: 4096, min: 100, maxv: 32768 },
  { name: 'temperature', label: 'Temperature', kind: 'number', def: 0.3, min: 0, maxv: 2, step: 0.1 },
  { name: 'output_format', label: 'Output format', kind: 'select', options: ['text', 'json', 'markdown'], def: 'text' },
  { name: 'output_schema', label: 'Output schema (JSON Schema)', kind: 'json', hint: 'Only with the json output format.' },
  { name: 'input_schema', label: 'Input schema (JSON Schema)', kind: 'json', hint: 'Informational.' },
  { name: 'max_tool_calls', label: 'Max tool calls', kind: 'int', def: 10, min: 1, maxv: 50 },
  { name: 'timeout_ms', label: 'Timeout (ms)', kind: 'int', def: 30000, min: 1000, maxv: 300000 },
  { name: 'enable_streaming', label: 'Stream by default', kind: 'bool', def: false },
  { name: 'async_mode', label: 'Async runs (answer 202, follow the event stream)', kind: 'bool', def: false },
  { name: 'auth_mode', label: 'Auth mode', kind: 'select', options: ['api_key', 'public'], def: 'api_key', hint: 'public: anyone may run it without a key (rate limited per IP).' },
  { name: 'price_per_run_cents', label: 'Price per run (cents)', kind: 'int', def: 0, min: 0, maxv: 10000 },
  { name: 'rate_limit_per_minute', label: 'Runs per minute', kind: 'int', min: 1, maxv: 100000, nullable: true, hint: '1–100000; empty: the gateway’s limit for every endpoint.' },
];
const NAMES = FIELDS.map((f) => f.name);

function control(f, value, workspaces) {
  const attrs = { name: f.name, id: `ep-${f.name}` };
  switch (f.kind) {
    case 'textarea':
      return h('textarea', { ...attrs, rows: f.rows, value: value ?? '' });
    case 'json':
      return h('textarea', { ...attrs, rows: 4, class: 'mono', spellcheck: false, value: value == null ? '' : JSON.stringify(value, null, 2) });
    case 'select':
      return h('select', attrs, f.options.map((o) => h('option', { value: o, selected: (value ?? f.def) === o }, o)));
    case 'workspace':
      return h('select', attrs,
        h('option', { value: '' }, '(no workspace: no tools)'),
        workspaces.map((w) => h('option', { value: w.id, selected: value === w.id }, w.name)));
    case 'bool':
      return h('input', { ...attrs, type: 'checkbox', checked: Boolean(value ?? f.def) });
    case 'int':
    case 'number':
      return h('input', { ...attrs, type: 'number', inputMode: f.kind === 'int' ? 'numeric' : 'decimal', min: f.min, max: f.maxv, step: f.step ?? 1, value: String(value ?? f.def ?? '') });
    case 'secret':
      return h('input', { ...attrs, type: 'password', autocomplete: 'off', value: '' });
    case 'url':
      return h('input', { ...attrs, type: 'url', value: value ?? '' });
    default:
      return h('input', { ...attrs, type: 'text', value: value ?? f.def ?? '' });
  }
}

// read turns a control's value into the API's type; undefined means "not set".
function read(f, el) {
  switch (f.kind) {
    case 'bool':
      return el.checked;
    case 'int':
    case 'number': {
      if (el.value.trim() === '') return undefined;
      const n = Number(el.value);
      return Number.isFinite(n) ? n : el.value; // let the API name a bad number
    }
    case 'json': {
      const t = el.value.trim();
      if (!t) return null;
      return JSON.parse(t); // the caller reports a SyntaxError next to the field
    }
    default:
      return el.value.trim() === '' ? undefined : el.value;
  }
}

function endpointForm(existing, workspaces, onSaved) {
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const controls = new Map();
  const fields = FIELDS.map((f) => {
    const el = control(f, existing ? existing[f.name] : undefined, workspaces);
    if (f.required) el.required = true;
    controls.set(f.name, el);
    let hint = f.hint ?? null;
    if (!hint && f.min !== undefined && f.maxv !== undefined) hint = `${f.min}–${f.maxv}${f.def !== undefined ? `, default ${f.def}` : ''}.`;
    if (existing && f.kind === 'secret') hint = 'Leave empty to keep the current key. Stored encrypted and never shown.';
    return field(f.label + (f.required ? ' (required)' : ''), el, hint);
  });
  const button = h('button', { type: 'submit' }, existing ? 'Save changes' : 'Create endpoint');
  // A group shows its fields in the order given (check boxes last, on rows of their own).
  const group = (legend, names) => h('fieldset', {}, h('legend', {}, legend),
    names.map((n) => fields[NAMES.indexOf(n)]));
  const form = h('form', { class: 'card endpoint-form', novalidate: true },
    group('Basics', ['name', 'workspace_id', 'system_prompt', 'description', 'slug', 'agent_type']),
    group('Model', ['llm_provider', 'llm_model', 'llm_base_url', 'llm_api_key', 'max_tokens', 'temperature']),
    group('Output', ['output_format', 'output_schema', 'input_schema']),
    group('Limits and access', ['max_tool_calls', 'timeout_ms', 'rate_limit_per_minute', 'auth_mode', 'price_per_run_cents', 'enable_streaming', 'async_mode']),
    h('div', { class: 'actions' }, button, existing ? h('a', { class: 'button secondary', href: `#/endpoints/${enc(existing.id)}` }, 'Cancel') : null),
    status);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    status.replaceChildren();
    const body = {};
    for (const f of FIELDS) {
      let v;
      try {
        v = read(f, controls.get(f.name));
      } catch (err) {
        setFieldError(form, f.name, `${f.name}: not valid JSON (${err.message}).`);
        controls.get(f.name).focus();
        return;
      }
      if (!existing) {
        if (v === undefined || (v === null && f.kind === 'json')) continue;
        body[f.name] = v;
        continue;
      }
      // Edit: send only what changed, so untouched fields keep their stored values.
      const before = existing[f.name];
      if (f.kind === 'secret') {
        if (v !== undefined) body[f.name] = v;
      } else if (f.kind === 'json') {
        if (JSON.stringify(v) !== JSON.stringify(before ?? null)) body[f.name] = v;
      } else {
        const after = v === undefined ? (f.nullable || f.name === 'workspace_id' || f.name === 'llm_base_url' ? null : undefined) : v;
        if (after !== undefined && after !== (before ?? null)) body[f.name] = after;
      }
    }
    if (existing && Object.keys(body).length === 0) {
      status.replaceChildren(h('p', { class: 'muted' }, 'Nothing changed.'));
      return;
    }
    await busy(button, async () => {
      try {
        const res = existing
          ? await api.patch(`/api/agent-endpoints/${enc(existing.id)}`, body)
          : await api.post('/api/agent-endpoints', body);
        onSaved(res);
      } catch (err) {
        const name = err.status === 400 || err.status === 409 ? fieldFor(err, NAMES) : null;
        if (name && setFieldError(form, name, err.message)) {
          controls.get(name).focus();
          status.replaceChildren(h('p', { class: 'error' }, 'Please correct the field marked above.'));
        } else {
          status.replaceChildren(errorBox(err));
        }
      }
    });
  });
  return form;
}

async function workspacesFor(signal) {
  try {
    const res = await api.get('/api/workspaces', { signal });
    return { workspaces: res?.workspaces ?? [] };
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    return { workspaces: [], error: err };
  }
}

/** endpointList renders the caller's endpoints. */
export async function endpointList(page, { signal }) {
  const area = h('div', {}, h('p', { class: 'muted' }, 'Loading endpoints…'));
  page.append(
    h('div', { class: 'section-head' }, h('h1', {}, 'Agent endpoints'), h('a', { class: 'button', href: '#/endpoints/new' }, 'New endpoint')),
    h('p', { class: 'lead' }, 'Each endpoint is a system prompt, a model and a workspace of tools behind one URL and key.'),
    area,
  );
  try {
    const { endpoints = [] } = (await api.get('/api/agent-endpoints', { signal })) ?? {};
    if (endpoints.length === 0) {
      area.replaceChildren(h('p', { class: 'muted' }, 'No endpoints yet. ', h('a', { href: '#/endpoints/new' }, 'Create your first endpoint'), '.'));
      return;
    }
    const rows = endpoints.map((ep) => h('tr', { 'data-endpoint': ep.slug },
      h('th', { scope: 'row' }, h('a', { href: `#/endpoints/${enc(ep.id)}` }, ep.name)),
      h('td', {}, h('code', {}, ep.slug)),
      h('td', {}, `${ep.llm_provider ?? ''} / ${ep.llm_model ?? ''}`),
      h('td', {}, ep.auth_mode ?? ''),
      h('td', {}, when(ep.created_at)),
      h('td', {}, h('a', { href: `#/endpoints/${enc(ep.id)}/console`, 'aria-label': `Test ${ep.name}` }, 'Test'), ' · ',
        h('a', { href: `#/endpoints/${enc(ep.id)}/runs`, 'aria-label': `Runs of ${ep.name}` }, 'Runs'))));
    area.replaceChildren(tableWrap('Endpoints', h('table', {},
      h('caption', { class: 'sr-only' }, 'Your agent endpoints'),
      h('thead', {}, h('tr', {}, ['Name', 'Slug', 'Model', 'Auth', 'Created', 'Open'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)), { stack: true }));
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    area.replaceChildren(errorBox(err, 'Could not load endpoints'));
  }
}

/** endpointNew renders the create form. */
export async function endpointNew(page, { signal, go }) {
  page.append(h('p', { class: 'crumbs' }, h('a', { href: '#/endpoints' }, 'Endpoints'), ' / '), h('h1', {}, 'New endpoint'));
  const { workspaces, error } = await workspacesFor(signal);
  if (error) page.append(errorBox(error, 'Workspaces could not be loaded'));
  page.append(endpointForm(null, workspaces, (res) => {
    const ep = res.endpoint;
    if (res.api_key) freshKeys.set(ep.id, res.api_key);
    go(`/endpoints/${enc(ep.id)}`, `Endpoint “${ep.name}” created.`);
  }));
}

/** endpointEdit renders the edit form of one endpoint. */
export async function endpointEdit(page, { params: [id], signal, go }) {
  const [{ endpoint }, { workspaces, error }] = await Promise.all([
    api.get(`/api/agent-endpoints/${enc(id)}`, { signal }),
    workspacesFor(signal),
  ]);
  page.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/endpoints' }, 'Endpoints'), ' / ', h('a', { href: `#/endpoints/${enc(id)}` }, endpoint.name), ' / '),
    h('h1', {}, `Edit ${endpoint.name}`),
  );
  if (error) page.append(errorBox(error, 'Workspaces could not be loaded'));
  page.append(endpointForm(endpoint, workspaces, () => {
    go(`/endpoints/${enc(id)}`, 'Endpoint saved.');
  }));
}

/** endpointTabs is the sub-navigation shared by the pages of one endpoint. */
export function endpointTabs(ep, active) {
  const tab = (key, label, path) => h('li', {}, h('a', { href: `#/endpoints/${enc(ep.id)}${path}`, 'aria-current': key === active ? 'page' : null }, label));
  return h('nav', { class: 'tabs', 'aria-label': `Endpoint ${ep.name}` }, h('ul', {},
    tab('overview', 'Overview', ''), tab('console', 'Test console', '/console'), tab('runs', 'Runs', '/runs'), tab('charts', 'Charts', '/charts')));
}

/** endpointHeader renders breadcrumbs, title and tabs for one endpoint's pages. */
export function endpointHeader(ep, active, title) {
  return [
    h('p', { class: 'crumbs' }, h('a', { href: '#/endpoints' }, 'Endpoints'), ' / ',
      title && title !== ep.name ? [h('a', { href: `#/endpoints/${enc(ep.id)}` }, ep.name), ' / '] : null),
    h('h1', {}, title ?? ep.name),
    endpointTabs(ep, active),
  ];
}

function curlLine(ep, key) {
  const url = `${location.origin}/api/run/${ep.slug}`;
  const parts = ['curl -N', shellQuote(url)];
  if (ep.auth_mode !== 'public') parts.push('-H', shellQuote(`Authorization: Bearer ${key ?? 'aek_YOUR_KEY'}`));
  parts.push('-H', shellQuote('Content-Type: application/json'), '-H', shellQuote('Accept: text/event-stream'),
    '-d', shellQuote(JSON.stringify({ input: 'Hello!' })));
  return parts.join(' ');
}

function keyPanel(ep, key) {
  const keyId = 'api-key-value';
  return h('section', { class: 'card key-panel', 'aria-labelledby': 'key-title' },
    h('h2', { id: 'key-title' }, 'Your API key'),
    h('p', { class: 'warn' }, h('strong', {}, 'Copy it now: you will not see this again.'), ' Only a hash is stored; if you lose it, regenerate a new one.'),
    h('div', { class: 'copy-line' }, h('code', { id: keyId, class: 'secret', 'data-api-key': '' }, key), copyButton(() => key, 'Copy key')));
}

/** endpointDetail renders one endpoint: run URL, curl, key (once), regenerate, edit, delete. */
export async function endpointDetail(page, { params: [id], signal, go }) {
  const [{ endpoint: ep }, { workspaces }] = await Promise.all([
    api.get(`/api/agent-endpoints/${enc(id)}`, { signal }),
    workspacesFor(signal),
  ]);
  const wsName = workspaces.find((w) => w.id === ep.workspace_id)?.name ?? ep.workspace_id;
  const keyArea = h('div', {});
  let shownKey = freshKeys.get(ep.id) ?? null;
  freshKeys.delete(ep.id);

  const curl = h('pre', { class: 'curl', id: 'curl-line' });
  const runUrl = `${location.origin}/api/run/${ep.slug}`;
  const showKey = () => {
    keyArea.replaceChildren(shownKey ? keyPanel(ep, shownKey) : h('p', { class: 'muted' },
      ep.auth_mode === 'public' ? 'This endpoint is public: no key is needed.' : 'The API key was shown once when it was made. Regenerate it if it is lost.'));
    curl.textContent = curlLine(ep, shownKey);
  };
  showKey();

  const status = h('div', { class: 'form-status' });
  const regen = h('button', { type: 'button', class: 'secondary' }, 'Regenerate key');
  regen.addEventListener('click', async () => {
    if (!(await confirmDialog('Regenerate the API key?', 'Regenerate key', 'The current key stops working at once. Callers using it will get 401 until they switch.'))) return;
    await busy(regen, async () => {
      try {
        const res = await api.post(`/api/agent-endpoints/${enc(ep.id)}/regenerate-key`);
        shownKey = res.api_key;
        showKey();
        keyArea.querySelector('button.copy')?.focus();
      } catch (err) {
        status.replaceChildren(errorBox(err));
      }
    });
  });
  const del = h('button', { type: 'button', class: 'danger' }, 'Delete endpoint');
  del.addEventListener('click', async () => {
    if (!(await confirmDialog(`Delete the endpoint “${ep.name}”?`, 'Delete endpoint', 'Its key stops working at once. Its runs stay readable.'))) return;
    await busy(del, async () => {
      try {
        await api.del(`/api/agent-endpoints/${enc(ep.id)}`);
        go('/endpoints', `Endpoint “${ep.name}” deleted.`);
      } catch (err) {
        status.replaceChildren(errorBox(err));
      }
    });
  });

  const row = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
  page.append(
    ...endpointHeader(ep, 'overview'),
    keyArea,
    h('section', { class: 'card', 'aria-labelledby': 'call-title' },
      h('h2', { id: 'call-title' }, 'Call it'),
      h('p', {}, 'Run URL: ', h('code', { id: 'run-url' }, runUrl), ' ', copyButton(() => runUrl, 'Copy URL')),
      h('p', {}, 'With curl (streams Server-Sent Events):'),
      curl,
      copyButton(() => curl.textContent, 'Copy curl command')),
    h('section', { class: 'card', 'aria-labelledby': 'settings-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'settings-title' }, 'Settings'),
        h('a', { class: 'button secondary', href: `#/endpoints/${enc(ep.id)}/edit` }, 'Edit')),
      h('dl', { class: 'facts' },
        row('Slug', h('code', {}, ep.slug)),
        row('Status', ep.status ?? ''),
        row('Description', ep.description ?? '—'),
        row('Workspace', ep.workspace_id ? h('a', { href: `#/workspaces/${enc(ep.workspace_id)}` }, wsName) : 'none (no tools)'),
        row('Type', ep.agent_type ?? ''),
        row('Model', `${ep.llm_provider ?? ''} / ${ep.llm_model ?? ''}`),
        row('Base URL', ep.llm_base_url || 'provider default'),
        row('Model API key', ep.has_llm_api_key ? 'the endpoint’s own (stored encrypted, never shown)' : 'none set: the gateway’s key for the provider'),
        row('Max tokens', String(ep.max_tokens ?? '')),
        row('Temperature', String(ep.temperature ?? '')),
        row('Output', ep.output_format ?? ''),
        ep.output_schema ? row('Output schema', h('pre', { class: 'prompt' }, pretty(ep.output_schema))) : null,
        ep.input_schema ? row('Input schema', h('pre', { class: 'prompt' }, pretty(ep.input_schema))) : null,
        row('Max tool calls', String(ep.max_tool_calls ?? '')),
        row('Timeout', `${ep.timeout_ms ?? ''} ms`),
        row('Streaming by default', ep.enable_streaming ? 'yes' : 'no'),
        row('Async', ep.async_mode ? 'yes' : 'no'),
        row('Auth', ep.auth_mode ?? ''),
        row('Runs per minute', ep.rate_limit_per_minute ? num(ep.rate_limit_per_minute) : 'the gateway’s limit'),
        row('Price per run', `${ep.price_per_run_cents ?? 0} ¢`),
        row('System prompt', h('pre', { class: 'prompt' }, ep.system_prompt ?? '')),
        row('Created', when(ep.created_at)),
        row('Updated', when(ep.updated_at)))),
    h('div', { class: 'actions' }, regen, del),
    status,
  );
}
