// views/workspaces.js: workspaces (create, edit, delete), their MCP servers (add, enable,
// disable, remove) and the merged tool list the endpoints of a workspace can call.

import { api } from '../api.js';
import {
  h, field, busy, errorBox, tableWrap, when, confirmDialog, notice,
  setFieldError, clearFieldErrors, fieldFor, pretty,
} from '../ui.js';

const enc = encodeURIComponent;

function showApiError(form, status, err, names) {
  const name = err.status === 400 || err.status === 409 ? fieldFor(err, names) : null;
  if (name && setFieldError(form, name, err.message)) {
    form.elements.namedItem(name)?.focus();
  } else {
    status.replaceChildren(errorBox(err));
  }
}

/** workspaceList renders the workspaces and the form that creates one. */
export async function workspaceList(page, { signal, go }) {
  const listArea = h('div', {}, h('p', { class: 'muted' }, 'Loading workspaces…'));
  const status = h('div', { class: 'form-status' });
  const name = h('input', { name: 'name', required: true, maxLength: 100 });
  const description = h('input', { name: 'description' });
  const button = h('button', { type: 'submit' }, 'Create workspace');
  const form = h(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'ws-new-title' },
    h('h2', { id: 'ws-new-title' }, 'New workspace'),
    h('div', { class: 'row' }, field('Name', name), field('Description', description, 'Optional.')),
    h('div', { class: 'actions' }, button),
    status,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    status.replaceChildren();
    await busy(button, async () => {
      try {
        const body = { name: name.value.trim() };
        if (description.value.trim()) body.description = description.value.trim();
        const res = await api.post('/api/workspaces', body);
        go(`/workspaces/${enc(res.workspace.id)}`, `Workspace “${res.workspace.name}” created.`);
      } catch (err) {
        showApiError(form, status, err, ['name', 'description']);
      }
    });
  });
  page.append(
    h('h1', {}, 'Workspaces'),
    h('p', { class: 'lead' }, 'A workspace is a set of MCP servers whose tools your endpoints may call.'),
    listArea,
    form,
  );
  try {
    const { workspaces = [] } = (await api.get('/api/workspaces', { signal })) ?? {};
    if (workspaces.length === 0) {
      listArea.replaceChildren(h('p', { class: 'muted' }, 'No workspaces yet. Create one below.'));
      return;
    }
    const rows = workspaces.map((w) =>
      h('tr', {},
        h('th', { scope: 'row' }, h('a', { href: `#/workspaces/${enc(w.id)}` }, w.name)),
        h('td', {}, h('code', {}, w.slug ?? '')),
        h('td', { class: 'num' }, String(w.server_count ?? 0)),
        h('td', {}, w.description ?? ''),
        h('td', {}, when(w.created_at)),
      ));
    listArea.replaceChildren(tableWrap('Workspaces', h('table', {},
      h('caption', { class: 'sr-only' }, 'Your workspaces'),
      h('thead', {}, h('tr', {}, ['Name', 'Slug', 'Servers', 'Description', 'Created'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)), { stack: true }));
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    listArea.replaceChildren(errorBox(err, 'Could not load workspaces'));
  }
}

function headerRow(list, key = '', value = '') {
  const n = list.children.length + 1;
  const k = h('input', { name: 'header_key', value: key, 'aria-label': `Header ${n} name`, placeholder: 'Name', autocomplete: 'off' });
  const v = h('input', { name: 'header_value', value, type: 'password', 'aria-label': `Header ${n} value`, placeholder: 'Value', autocomplete: 'off' });
  const row = h('li', { class: 'kv' }, k, v);
  row.append(h('button', {
    type: 'button',
    class: 'secondary small',
    'aria-label': `Remove header ${n}`,
    onclick: () => {
      row.remove();
      list.parentElement.querySelector('button.add-header')?.focus();
    },
  }, 'Remove'));
  list.append(row);
  return k;
}

function serverForm(wsId, onAdded) {
  const status = h('div', { class: 'form-status' });
  const name = h('input', { name: 'name', required: true });
  const slug = h('input', { name: 'slug', pattern: '[a-z0-9][a-z0-9-]*' });
  const transport = h('select', { name: 'transport' },
    h('option', { value: 'streamable_http' }, 'streamable_http'),
    h('option', { value: 'sse' }, 'sse'));
  const url = h('input', { name: 'url', type: 'url', required: true, placeholder: 'http(s)://host/mcp' });
  const headers = h('ul', { class: 'kv-list', 'aria-label': 'Headers' });
  const addHeader = h('button', { type: 'button', class: 'secondary small add-header' }, 'Add header');
  addHeader.addEventListener('click', () => headerRow(headers).focus());
  const button = h('button', { type: 'submit' }, 'Add server');
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'srv-new-title' },
    h('h3', { id: 'srv-new-title' }, 'Add an MCP server'),
    h('div', { class: 'row' },
      field('Name', name),
      field('Slug', slug, 'Optional; derived from the name. Tools are named <slug>__<tool>.'),
      field('Transport', transport)),
    field('URL', url),
    h('fieldset', { class: 'headers' },
      h('legend', {}, 'Headers'),
      h('p', { class: 'hint' }, 'Sent to the server on every request. Values are stored encrypted and never shown again.'),
      headers, addHeader),
    h('div', { class: 'actions' }, button),
    status);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    status.replaceChildren();
    const body = { name: name.value.trim(), transport: transport.value, url: url.value.trim() };
    if (slug.value.trim()) body.slug = slug.value.trim();
    const hdrs = {};
    for (const li of headers.children) {
      const [k, v] = li.querySelectorAll('input');
      if (k.value.trim()) hdrs[k.value.trim()] = v.value;
    }
    if (Object.keys(hdrs).length) body.headers = hdrs;
    await busy(button, async () => {
      try {
        const res = await api.post(`/api/workspaces/${enc(wsId)}/servers`, body);
        form.reset();
        headers.replaceChildren();
        notice(`Server “${res.server?.name ?? body.name}” added.`);
        await onAdded();
      } catch (err) {
        showApiError(form, status, err, ['name', 'slug', 'transport', 'url', 'headers']);
      }
    });
  });
  return form;
}

// headerNames lists the names of a server's headers; the API never returns their values.
function headerNames(srv) {
  const names = Array.isArray(srv.header_names) ? srv.header_names : [];
  if (names.length === 0) return null;
  return h('p', { class: 'hint', 'data-header-names': '' }, `Header${names.length === 1 ? '' : 's'}: `,
    names.map((n, i) => [i ? ', ' : '', h('code', {}, n)]), ' (values hidden)');
}

function serverTable(wsId, servers, reload) {
  if (servers.length === 0) return h('p', { class: 'muted' }, 'No MCP servers yet.');
  const rows = servers.map((srv) => {
    const status = h('span', { class: 'row-status', role: 'status' });
    const toggle = h('button', { type: 'button', class: 'secondary small' },
      srv.enabled ? 'Disable' : 'Enable');
    toggle.setAttribute('aria-label', `${srv.enabled ? 'Disable' : 'Enable'} ${srv.name}`);
    toggle.addEventListener('click', () => busy(toggle, async () => {
      try {
        await api.patch(`/api/workspaces/${enc(wsId)}/servers/${enc(srv.id)}`, { enabled: !srv.enabled });
        notice(`Server “${srv.name}” ${srv.enabled ? 'disabled' : 'enabled'}.`);
        await reload();
      } catch (err) {
        status.replaceChildren(errorBox(err));
      }
    }));
    const remove = h('button', { type: 'button', class: 'danger small', 'aria-label': `Remove ${srv.name}` }, 'Remove');
    remove.addEventListener('click', async () => {
      if (!(await confirmDialog(`Remove the server “${srv.name}”?`, 'Remove server', 'Endpoints using this workspace lose its tools.'))) return;
      await busy(remove, async () => {
        try {
          await api.del(`/api/workspaces/${enc(wsId)}/servers/${enc(srv.id)}`);
          notice(`Server “${srv.name}” removed.`);
          await reload();
        } catch (err) {
          status.replaceChildren(errorBox(err));
        }
      });
    });
    return h('tr', { 'data-server': srv.slug ?? srv.id },
      h('th', { scope: 'row' }, srv.name),
      h('td', {}, h('code', {}, srv.slug ?? '')),
      h('td', {}, srv.transport ?? ''),
      h('td', { class: 'url' }, srv.url ?? (srv.operator_server ? `operator: ${srv.operator_server}` : ''),
        headerNames(srv)),
      h('td', {}, h('span', { class: srv.enabled ? 'badge status-success' : 'badge status-cancelled' }, srv.enabled ? 'enabled' : 'disabled')),
      h('td', { class: 'actions-cell' }, toggle, ' ', remove, status));
  });
  return tableWrap('MCP servers', h('table', {},
    h('caption', { class: 'sr-only' }, 'MCP servers of this workspace'),
    h('thead', {}, h('tr', {}, ['Name', 'Slug', 'Transport', 'URL', 'State', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows)), { stack: true });
}

async function loadTools(wsId, area, signal) {
  area.setAttribute('aria-busy', 'true');
  area.replaceChildren(h('p', { class: 'muted' }, 'Asking every enabled server for its tools…'));
  try {
    const { tools = [], warnings = [] } = (await api.get(`/api/workspaces/${enc(wsId)}/tools`, { signal })) ?? {};
    // A server that cannot be reached or lists badly named tools is a warning, not a failure:
    // the other servers' tools still work.
    const warn = warnings.length === 0 ? null : h('div', { class: 'warn', id: 'tool-warnings', role: 'status' },
      h('strong', {}, 'Warnings'), h('ul', {}, warnings.map((w) => h('li', {}, w))));
    if (tools.length === 0) {
      area.replaceChildren(warn ?? '', h('p', { class: 'muted' }, 'No tools: add or enable an MCP server.'));
      return;
    }
    const rows = tools.map((t) => h('tr', { 'data-tool': t.name },
      h('th', { scope: 'row' }, h('code', {}, t.name)),
      h('td', {}, typeof t.server === 'string' ? t.server : t.server?.slug ?? t.server?.name ?? ''),
      h('td', {}, t.description ?? '',
        t.input_schema ? h('details', {}, h('summary', {}, 'Input schema'), h('pre', {}, pretty(t.input_schema))) : null)));
    area.replaceChildren(
      warn ?? '',
      h('p', { class: 'muted' }, `${tools.length} tool${tools.length === 1 ? '' : 's'}.`),
      tableWrap('Tools', h('table', { class: 'tools' },
        h('caption', { class: 'sr-only' }, 'Tools from the enabled servers'),
        h('thead', {}, h('tr', {}, ['Tool', 'Server', 'Description'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows)), { stack: true }));
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    area.replaceChildren(errorBox(err, 'Could not list tools'));
  } finally {
    area.removeAttribute('aria-busy');
  }
}

/** workspaceDetail renders one workspace: edit, delete, servers and tools. */
export async function workspaceDetail(page, { params: [wsId], signal, go }) {
  const data = await api.get(`/api/workspaces/${enc(wsId)}`, { signal });
  const ws = data.workspace ?? {};
  const title = h('h1', {}, ws.name ?? 'Workspace');
  const serversArea = h('div', {});
  const toolsArea = h('div', { class: 'tools-area' });

  const reload = async () => {
    const fresh = await api.get(`/api/workspaces/${enc(wsId)}`, { signal });
    serversArea.replaceChildren(serverTable(wsId, fresh.servers ?? fresh.workspace?.servers ?? [], reload));
    await loadTools(wsId, toolsArea, signal);
  };

  // Edit and delete.
  const status = h('div', { class: 'form-status' });
  const name = h('input', { name: 'name', value: ws.name ?? '', required: true });
  const description = h('input', { name: 'description', value: ws.description ?? '' });
  const save = h('button', { type: 'submit' }, 'Save');
  const del = h('button', { type: 'button', class: 'danger' }, 'Delete workspace');
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'ws-edit-title' },
    h('h2', { id: 'ws-edit-title' }, 'Details'),
    h('p', {}, 'Slug ', h('code', {}, ws.slug ?? ''), ' · created ', when(ws.created_at)),
    h('div', { class: 'row' }, field('Name', name), field('Description', description)),
    h('div', { class: 'actions' }, save, del),
    status);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    status.replaceChildren();
    await busy(save, async () => {
      try {
        const res = await api.patch(`/api/workspaces/${enc(wsId)}`, { name: name.value.trim(), description: description.value.trim() });
        title.textContent = res?.workspace?.name ?? name.value.trim();
        notice('Workspace saved.');
      } catch (err) {
        showApiError(form, status, err, ['name', 'description']);
      }
    });
  });
  del.addEventListener('click', async () => {
    if (!(await confirmDialog(`Delete the workspace “${ws.name}”?`, 'Delete workspace', 'Its MCP servers are removed; endpoints using it lose their tools.'))) return;
    await busy(del, async () => {
      try {
        await api.del(`/api/workspaces/${enc(wsId)}`);
        go('/workspaces', `Workspace “${ws.name}” deleted.`);
      } catch (err) {
        status.replaceChildren(errorBox(err));
      }
    });
  });

  const refresh = h('button', { type: 'button', class: 'secondary small' }, 'Refresh tools');
  refresh.addEventListener('click', () => busy(refresh, () => loadTools(wsId, toolsArea, signal).catch(() => {})));

  page.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/workspaces' }, 'Workspaces'), ' / '),
    title,
    form,
    h('section', { 'aria-labelledby': 'srv-title' }, h('h2', { id: 'srv-title' }, 'MCP servers'), serversArea, serverForm(wsId, reload)),
    h('section', { 'aria-labelledby': 'tools-title' }, h('div', { class: 'section-head' }, h('h2', { id: 'tools-title' }, 'Tools'), refresh), toolsArea),
  );
  serversArea.replaceChildren(serverTable(wsId, data.servers ?? ws.servers ?? [], reload));
  await loadTools(wsId, toolsArea, signal);
}
